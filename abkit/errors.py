"""The exception tree: every error abkit raises on purpose derives from ``AbkitError``."""


class AbkitError(ValueError):
    """Bad input or configuration; the message names the field, the value and the fix."""


class ParameterError(AbkitError):
    """A notebook or pipeline parameter is unknown, of the wrong type or out of range."""


class NotebookFailed(RuntimeError):
    """A notebook raised while the pipeline executed it."""
