"""The errors tracked raises to its caller, each with a message that says what to do.

Everything else that goes wrong in tracked is a warning: the evaluation's own
result is returned all the same.
"""


class SettingsError(ValueError):
    """An option or environment variable has a value tracked cannot use."""


class SessionError(ValueError):
    """The path is not a readable offline session; the message says why."""


class MergeError(ValueError):
    """Parts that do not make one run (missing, duplicated, of different evaluations); the message says which."""


class DistributedEvalError(RuntimeError):
    """Raised on every rank when another rank failed, or did not answer within ``gather_timeout``."""
