"""The error raised for anything the user can fix (a missing folder, an unknown task)."""


class EvalUsageError(ValueError):
    """A problem with the command line or inputs; the message says what to change."""
