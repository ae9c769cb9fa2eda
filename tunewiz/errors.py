"""The one error type the CLI and the TUI show to a person as a message, not a traceback, and its kinds.

Every error meant for a person is a TunewizError (or one of the subclasses here, where a caller
needs to tell the kinds apart); anything else reaching a front end is a bug and shows as one.
Modules raise these by importing them from here (their old homes still re-export them).
"""

from __future__ import annotations

import errno
import re

DISK_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an input/output error (a failing disk?)",
}
"""The errors of a disk a person can do something about, and how to say them."""


class TunewizError(Exception):
    """A problem the user can fix; the message says what and where (file, line or key)."""


class DiskError(TunewizError):
    """A file could not be written (a full or read-only disk, no permission)."""


class ConfigError(TunewizError, ValueError):
    """A setting's value or name is wrong (the message names section.key); also a ValueError for the callers
    that check values as values."""


class ProjectError(TunewizError):
    """The project file is missing, malformed or invalid."""


class ProjectLockedError(TunewizError):
    """Another process has the project open for writing (`holder` says which, when known)."""

    holder: str = "another process"


class FormatError(TunewizError):
    """A file that cannot be read as QA pairs at all."""


class FatalRequestError(TunewizError):
    """A generation request failed in a way no retry fixes (bad key, unknown model): the run stops."""


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_REASONS


def disk_error(exc: OSError, outcome: str, path: object = None) -> DiskError:
    """The message for a failed write: the path (`path` when the error names none), the reason,
    and what that leaves (`outcome`)."""
    where = exc.filename or path or "a file"
    return DiskError(f"could not write {where}: {DISK_REASONS.get(exc.errno, exc.strerror)}; {outcome}")


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_urls(text: str) -> str:
    """`text` with the user name and password of any URL in it hidden (`https://***@host/...`)."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)
