"""Errors that the CLI reports as one line."""


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2."""
