"""The exceptions users see: each message says what went wrong and what to do about it."""


class Geo4DError(Exception):
    """A failure the user can act on (bad input, missing file, unsupported setting).

    The CLI prints the message and exits non-zero; operators report it as an error.
    """


class Cancelled(Geo4DError):
    """Raised by long-running work when its cancel check says stop."""

    def __init__(self, message: str = "Cancelled by the user; nothing was written.") -> None:
        super().__init__(message)


class SettingError(Geo4DError, ValueError):
    """A setting outside what it allows, raised when a settings dataclass is built (or checked against the model).

    It is a ValueError (a config's validation error) and a Geo4DError (the user can act on it). `field` is the
    dataclass field; each surface says it in its users' words once, with named(): `--end` on the command line,
    `frame_range` in Python, "Last Frame" in the operator. Its own message uses `owner.field`.
    """

    def __init__(self, owner: str, field: str, value: object, allowed: str) -> None:
        self.owner, self.field, self.value, self.allowed = owner, field, value, allowed
        super().__init__(self.named(f"{owner}.{field}"))

    def named(self, name: str) -> str:
        """The message with the setting called `name`, e.g. "--stride = 16 is invalid: it must be ..."."""
        return f"{name} = {self.value!r} is invalid: it must be {self.allowed}."

    def __reduce__(self):
        return type(self), (self.owner, self.field, self.value, self.allowed)
