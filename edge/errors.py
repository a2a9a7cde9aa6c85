"""The one exception type for a user's mistake.

Raise `UserError("--data x.npz: expected ...")` anywhere; the CLI prints it as one line and exits 2
instead of showing a traceback.
"""


class UserError(Exception):
    """A problem with the user's input (a file, a flag) that they can fix."""
