"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class PyroVAEError(Exception):
    """A problem the user can fix (bad input, missing data, unusable checkpoint).

    The message is written for the user: one line, saying what is wrong and what to do.
    """
