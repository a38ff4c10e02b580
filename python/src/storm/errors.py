"""Errors a user can fix. The CLI prints them as one ``error: ...`` line and exits 2."""


class StormError(Exception):
    """Base of every error caused by input, configuration or usage rather than a bug."""


class InputError(StormError):
    """An input file or its contents do not meet the step's contract."""


class SpecError(StormError):
    """The dataset spec does not match the data (a missing column, an absent control value)."""


class Interrupted(Exception):
    """Training was stopped by a signal (a scheduler's SIGTERM, a spot reclaim); its last
    checkpoint is kept and a new attempt resumes from it. The CLI exits 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class UnknownModelError(StormError):
    """A model name that no installed package registers."""
