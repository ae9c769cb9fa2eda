"""Appending to a JSONL journal so that nothing already stored is ever lost.

Two faults are handled here, once for every journal of a project:

- a torn last line (a crash or a full disk mid-write) is never appended onto:
  its bytes are moved to a side file first (`pairs.jsonl` -> `pairs.torn-<time>.jsonl`)
  and the caller is told where, so the user can restore it by hand;
- an append is all or nothing against errors and Ctrl-C: on any exception the
  file is cut back to its length before the append, so a half-written batch
  never stays behind (a kill -9 can still leave a torn tail, which the next
  append sets aside as above).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Iterable

CHUNK_BYTES = 1 << 20
"""Lines are written in chunks of about this size, so a big import never holds its whole text."""


def torn_tail_size(path: Path) -> int:
    """Bytes after the last newline of `path` (0 when it ends cleanly or does not exist)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return 0
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(4096, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                return end - (position - step + newline + 1)
            position -= step
        return end


def set_aside_torn_tail(path: Path) -> Path | None:
    """Move a torn last line into a side file and cut it off `path`; returns the side file.

    A last line that is a whole record and lacks only its newline (a hand edit, a crash between the
    record and its newline) is no torn line: it gets its newline and stays."""
    size = torn_tail_size(path)
    if not size:
        return None
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(end - size)
        tail = handle.read(size)
        if _is_record(tail):
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            return None
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        side = path.with_name(f"{path.stem}.torn-{stamp}{path.suffix}")
        with side.open("ab") as out:  # "a": two tails set aside in one second are both kept
            out.write(tail + b"\n")
            out.flush()
            os.fsync(out.fileno())
        handle.truncate(end - size)
        handle.flush()
        os.fsync(handle.fileno())
    return side


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # cut short (UnicodeDecodeError is a ValueError too)
        return False


def torn_tail_notice(path: Path, side: Path) -> str:
    return (f"{path}: its last line was cut short (a crash or a full disk while writing); "
            f"it was moved to {side} so that nothing is appended onto it. "
            "If it matters, finish the line there and append it to the journal by hand.")


def append_lines(path: Path, lines: Iterable[str], sync: bool = True) -> tuple[int, Path | None]:
    """Append `lines` (each ending in a newline) to `path`, all or nothing.

    Returns how many lines were written and the side file a torn tail was moved
    to (None when the journal ended cleanly).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    side = set_aside_torn_tail(path)
    written = 0
    # Unbuffered: after a failure nothing is left in a buffer to be written behind the cut.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            chunk: list[bytes] = []
            size = 0
            for line in lines:
                data = line.encode("utf-8")
                chunk.append(data)
                size += len(data)
                written += 1
                if size >= CHUNK_BYTES:
                    _write_all(fd, b"".join(chunk))
                    chunk, size = [], 0
            _write_all(fd, b"".join(chunk))
            if sync:
                os.fsync(fd)
        except BaseException as exc:
            _cut_back(fd, start)
            if isinstance(exc, OSError) and exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(path)) from None  # os.write names no file
            raise
    finally:
        os.close(fd)
    return written, side


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cut_back(fd: int, length: int) -> None:
    """Undo a failed append: truncate to the length before it."""
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    except OSError:
        pass  # nothing more can be done; the next append sets a torn tail aside
