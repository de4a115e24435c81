"""Writing files so that a reader never sees half of one: the one atomic writer.

Every file kdteach writes (cache entries, results, figures, notebooks, web pages) is first
written under a temporary name in the folder it belongs to, flushed to the disk, then
renamed into place. A rename within one folder is atomic, so a file is either the old one
or the new one, never a mixture; a write that fails removes its temporary file.

:func:`write_atomic` writes one file; :func:`write_all_atomic` writes several, all to
temporary files first and only then renames each into place, so a failure while writing
changes none of them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

Writer = Callable[[str], None]  # writes the file's contents to the path it is given


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


class PartlyReplaced(OSError):
    """:func:`write_all_atomic` failed while renaming: some targets are new, some old."""


def remove_quietly(path) -> None:
    """Remove ``path`` if it is there; an error is ignored (the file was temporary)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync(path) -> None:
    """Flush a written file to the disk, so a full disk is reported now, not at close."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temporary(path: Path, write: Writer) -> str:
    """Write a temporary file beside ``path`` with ``write(temporary)``, flushed to the disk;
    returns its name. On a failure the temporary file is removed and the error re-raised."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # mkstemp makes the file private (0600): give it the target's mode, or a new file's
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE)
        write(tmp)
        _sync(tmp)
    except BaseException:
        remove_quietly(tmp)
        raise
    return tmp


def write_atomic(path: Path, write: Writer) -> Path:
    """Write one file atomically: ``write(temporary)``, then rename it to ``path``."""
    tmp = write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write_atomic(path, write)


def write_all_atomic(targets: Iterable[tuple[Path, Writer]]) -> list[Path]:
    """Write every ``(path, write)`` to a temporary file first, then rename each into place.

    A failure while writing leaves every target as it was and no temporary file behind. A
    failure while renaming (rare: renames need no space) removes the temporaries left and
    raises :class:`PartlyReplaced`."""
    written: list[tuple[str, Path]] = []
    try:
        for path, write in targets:
            written.append((write_temporary(path, write), Path(path)))
    except BaseException:
        for tmp, _ in written:
            remove_quietly(tmp)
        raise
    left = list(written)
    try:
        while left:
            os.replace(*left[0])
            left.pop(0)
    except OSError as exc:
        for tmp, _ in left:
            remove_quietly(tmp)
        raise PartlyReplaced(exc.errno, exc.strerror or str(exc)) from exc
    except BaseException:
        for tmp, _ in left:
            remove_quietly(tmp)
        raise
    return [path for _, path in written]
