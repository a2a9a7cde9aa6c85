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


MAX_SEED = 2**32 - 1  # the largest seed numpy's and TensorFlow's generators take


def check_seed(seed: int, flag: str = "--seed") -> None:
    """UserError unless 0 <= seed <= MAX_SEED (numpy and TensorFlow raise a traceback otherwise).

    >>> check_seed(-1)
    Traceback (most recent call last):
    edge.errors.UserError: --seed -1: expected a whole number from 0 to 4294967295
    """
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"{flag} {seed}: expected a whole number from 0 to {MAX_SEED}")


def check_rate(value: float, flag: str = "--lr") -> None:
    """UserError unless value is a finite number above 0 (a learning rate of nan trains a model of nans).

    >>> check_rate(float("nan"))
    Traceback (most recent call last):
    edge.errors.UserError: --lr nan: expected a finite number above 0
    """
    import math

    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{flag} {value:g}: expected a finite number above 0")
