"""Pipeline errors: values with a stable code and a sentence a person can act on.

Provider and parser failures are converted into one of these at the provider boundary, so the
stage runner only has to know two kinds: transient (retry later) and permanent (fail now).
"""
from __future__ import annotations


class PipelineError(Exception):
    retryable = False

    def __init__(self, code: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class TransientError(PipelineError):
    """Network trouble, timeouts, 429 and 5xx: the same call may succeed later."""

    retryable = True


class PermanentError(PipelineError):
    """Bad input or a refused request (4xx, not a PDF, encrypted, no text): retrying cannot help."""

    retryable = False
