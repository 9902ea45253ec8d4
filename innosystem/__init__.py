"""InnoSystem: a self-hostable, multi-tenant job platform.

This module is the public surface for plugin authors::

    from innosystem import hookimpl, Processor, JobContext, RetryableError, PermanentError
"""

from innosystem.errors import JobCancelled, PermanentError, RetryableError
from innosystem.hookspecs import hookimpl
from innosystem.processors import JobContext, Processor

__version__ = "0.1.0"

__all__ = [
    "JobCancelled",
    "JobContext",
    "PermanentError",
    "Processor",
    "RetryableError",
    "__version__",
    "hookimpl",
]
