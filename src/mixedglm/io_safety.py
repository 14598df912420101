"""Output files written all or nothing.

A command checks its output paths before it fits (:func:`check_output_path`), collects what
it will write in an :class:`OutputSet`, and commits the set at the end: every file is first
written to a temporary file in its target directory, and only when all are written are they
renamed into place. A run that fails leaves none of its output files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from mixedglm.errors import FileError


def _short(path: object, limit: int = 80) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def check_output_path(path: str | os.PathLike, option: str) -> Path:
    """Check that ``path`` can be written (before any work is done) and return it.

    Refused: an empty name, a directory, a missing or non-writable parent directory, a name
    longer than the file system allows, an existing file that cannot be overwritten.
    """
    text = str(path)
    if not text.strip():
        raise FileError(f"{option}: the output file name is empty")
    target = Path(text)
    try:
        is_dir = target.is_dir()
        parent = target.parent if str(target.parent) else Path(".")
        parent_ok = parent.is_dir()
    except OSError as err:
        raise FileError(f"{option}: cannot write '{_short(text)}': {err.strerror}") from None
    if is_dir or text.endswith(os.sep):
        raise FileError(f"{option}: '{_short(text)}' is a directory; give a file name")
    if not parent_ok:
        raise FileError(
            f"{option}: the directory '{_short(parent)}' of '{_short(text)}' does not exist"
        )
    limit = os.pathconf(parent, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(target.name.encode()) > limit:
        raise FileError(
            f"{option}: the file name '{_short(target.name)}' is too long (at most {limit} bytes)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FileError(f"{option}: the directory '{_short(parent)}' is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise FileError(f"{option}: '{_short(text)}' exists and is not writable")
    return target


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputSet:
    """Files to write together: :meth:`add` them, then :meth:`commit` (all or nothing)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, str | bytes, str]] = []

    def add(self, path: str | os.PathLike, text: str | bytes, option: str) -> None:
        """Queue ``text`` (or an image's bytes) for ``path`` (checked now, written at
        :meth:`commit`)."""
        self._pending.append((check_output_path(path, option), text, option))

    def commit(self) -> None:
        """Write every queued file to a temporary file, then rename them all into place."""
        written: list[tuple[str, Path]] = []
        try:
            for target, text, option in self._pending:
                try:
                    fd, tmp = tempfile.mkstemp(
                        prefix=f".{target.name[:50]}.", suffix=".tmp", dir=target.parent
                    )
                except OSError as err:
                    raise FileError(
                        f"{option}: cannot write '{_short(target)}': {err.strerror}"
                    ) from None
                written.append((tmp, target))
                try:
                    if isinstance(text, bytes):
                        with os.fdopen(fd, "wb") as binary:
                            binary.write(text)
                    else:
                        with os.fdopen(fd, "w", encoding="utf-8") as handle:
                            handle.write(text)
                    os.chmod(tmp, 0o666 & ~_umask())
                except OSError as err:
                    reason = "disk full" if err.errno == errno.ENOSPC else err.strerror
                    raise FileError(
                        f"{option}: cannot write '{_short(target)}': {reason}"
                    ) from None
            for tmp, target in written:
                os.replace(tmp, target)
        except BaseException:
            for tmp, _ in written:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
        finally:
            self._pending.clear()
