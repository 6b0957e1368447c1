"""The exceptions users see: each message says what went wrong and what to do about it."""


class Geo4DError(Exception):
    """A failure the user can act on (bad input, missing file, unsupported setting).

    The CLI prints the message and exits non-zero; operators report it as an error.
    """


class Cancelled(Geo4DError):
    """Raised by long-running work when its cancel check says stop."""

    def __init__(self, message: str = "Cancelled by the user; nothing was written.") -> None:
        super().__init__(message)
