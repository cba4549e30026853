"""Errors that the command line reports as one readable line instead of a traceback."""


class UserError(Exception):
    """An error caused by the user's input or environment: printed as one line, exit status 2."""
