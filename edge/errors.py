"""The one exception type for a user's mistake.

Raise `UserError("--data x.npz: expected ...")` anywhere; the CLI prints it as one line and exits 2
instead of showing a traceback.
"""


class UserError(Exception):
    """A problem with the user's input (a file, a flag) that they can fix."""


def missing(path, expected: str = "a file") -> str:
    """Why a path given as a file cannot be read as one: "a folder, expected <expected>" when it is a
    folder, "not a regular file ..." when it is a device, pipe or socket, else "no such file" (what
    follows `path: ` in a UserError).

    >>> missing("."), missing("/dev/null")
    ('a folder, expected a file', 'not a regular file (a device, pipe or socket), expected a file')
    """
    import os

    if os.path.isdir(path):
        return f"a folder, expected {expected}"
    if os.path.exists(path):
        return f"not a regular file (a device, pipe or socket), expected {expected}"
    return "no such file"
