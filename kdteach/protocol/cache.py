"""A checkpoint cache for trained teachers and finished stages.

Each entry is one file, ``<name>-<hash>.pt``, where the hash covers every setting that
changes its contents (the *key*). The key is also stored inside the file and compared
on load, so a renamed, stale or foreign file is never trusted.

* Writes are atomic (:func:`kdteach.protocol.files.write_atomic`): the file is written
  under a temporary name in the same folder, flushed, then renamed into place. An
  interrupted write leaves no entry, only at most a stray temporary file that is ignored
  (a failed write removes its own).
* Loads use ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists
  and dicts only, never arbitrary pickled objects.
* A corrupt, truncated, empty or mismatched file is reported in one line (a warning)
  and rebuilt. A write the file system refuses (a full disk, a quota, a read-only or
  unwritable folder, an I/O error) leaves no file behind, is reported once, and the
  cache is bypassed from then on: it only saves time, never changes a result.

The folder is ``KDTEACH_CACHE`` when set, else ``kdteach/`` in the user's cache folder
(``XDG_CACHE_HOME``, by default ``~/.cache``). The package never looks for a source
checkout: the repository's Makefile sets ``KDTEACH_CACHE`` to its own ``artifacts/``.

``KDTEACH_CACHE`` may list several folders (separated by ``:``, ``;`` on Windows): entries
are read from all of them, the first found wins, and new entries go to the first folder
that can be written. A class shares a lecturer's read-only cache that way, each learner's
own work cached in a folder of their own: ``KDTEACH_CACHE=~/kdteach-cache:/srv/kdteach``.
A folder that refuses writes because of its permissions is then passed over quietly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import torch

from kdteach.protocol.files import write_atomic

FORMAT_VERSION = 1


def _file_name(name: str, key: dict) -> str:
    return f"{name}-{key_hash(key)}.pt"


class NotCached(LookupError):
    """An experiment that may not train was asked for something the cache does not hold."""


class CacheWarning(UserWarning):
    """A cache entry or folder could not be used; the work is redone instead."""


# torch.save reports a failed write of its zip container as a RuntimeError, e.g.
# "[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 742" on a full disk
_WRITE_FAILURE = re.compile(
    r"inline_container|PytorchStreamWriter|file write failed|unexpected pos"
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _warn_once(message: str) -> None:
    """A CacheWarning shown as its message alone: no line of kdteach's source beside it
    (the place a warning points at is kdteach's code, not the learner's)."""
    warnings.warn_explicit(message, CacheWarning, filename="kdteach", lineno=0,
                           module="kdteach.protocol.cache")


def _save_entry(entry: dict, path) -> None:
    with open(path, "wb") as f:
        torch.save(entry, f)


def default_cache_dirs() -> list[Path]:
    """The folders of ``KDTEACH_CACHE`` in order, else the user's cache folder."""
    env = os.environ.get("KDTEACH_CACHE")
    if env:
        return [Path(part).expanduser() for part in env.split(os.pathsep) if part]
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return [Path(base).expanduser() / "kdteach"]


_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)  # the folder is not ours to write


def key_hash(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Cache:
    """``Cache(folder)`` or ``Cache([folder, ...])`` (read from all, written to the first
    that can be); ``Cache(None)`` is the default folders; ``Cache(False)`` is off."""

    def __init__(self, folder=None, enabled: bool = True):
        self.enabled = enabled and folder is not False
        if isinstance(folder, (str, Path)):
            self.folders = [Path(folder)]
        elif isinstance(folder, (list, tuple)):
            self.folders = [Path(f) for f in folder]
        else:
            self.folders = default_cache_dirs()
        self._write_failed = False

    @property
    def folder(self) -> Path:
        """Where new entries go: the first folder."""
        return self.folders[0]

    def __repr__(self):
        return f"Cache({', '.join(str(f) for f in self.folders)!r}, enabled={self.enabled})"

    def path(self, name: str, key: dict) -> Path:
        """Where the entry is: in the first folder that holds it, else in the first folder."""
        file = _file_name(name, key)
        for folder in self.folders:
            if (folder / file).exists():
                return folder / file
        return self.folder / file

    def load(self, name: str, key: dict):
        """The stored payload, or ``None`` when absent or not trustworthy (with a warning)."""
        if not self.enabled:
            return None
        path = self.path(name, key)
        if not path.exists():
            return None
        full_key = {"format": FORMAT_VERSION, **key}
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(entry, dict) or "key" not in entry or "payload" not in entry:
                raise ValueError("not a kdteach cache entry")
            if entry["key"] != json.dumps(full_key, sort_keys=True, default=str):
                raise ValueError("it was made with other settings")
        except Exception as exc:  # any unreadable file is rebuilt, never trusted
            warnings.warn(
                f"cache: ignoring {path.name} ({_first_line(exc)[:120]}); rebuilding it",
                CacheWarning,
                stacklevel=2,
            )
            return None
        return entry["payload"]

    def save(self, name: str, key: dict, payload) -> Path | None:
        """Store ``payload`` atomically, in the first folder that takes it (a folder whose
        permissions refuse is passed over). When none does, remove the partial file, warn
        once and go on without caching: later saves are skipped, the run is unaffected."""
        if not self.enabled or self._write_failed:
            return None
        full_key = {"format": FORMAT_VERSION, **key}
        entry = {"key": json.dumps(full_key, sort_keys=True, default=str), "payload": payload}
        file = _file_name(name, key)
        for i, folder in enumerate(self.folders):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                return write_atomic(folder / file, lambda tmp: _save_entry(entry, tmp))
            except (OSError, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) and not _WRITE_FAILURE.search(str(exc)):
                    raise  # not the file system: a bug, to be seen
                refused = isinstance(exc, OSError) and exc.errno in _REFUSED
                if refused and i + 1 < len(self.folders):
                    continue  # a shared, read-only folder: the next one takes it
                self._write_failed = True
                _warn_once(self._cannot_write(folder, exc, refused))
                return None
        return None

    def _cannot_write(self, folder: Path, exc: BaseException, refused: bool) -> str:
        if refused:
            advice = ("the folder is not writable for you: to cache your own work too, set "
                      f"KDTEACH_CACHE to a folder of yours followed by this one "
                      f"(e.g. ~/kdteach-cache{os.pathsep}{folder})")
            return (f"cache: cannot write to {folder} ({exc.strerror or _first_line(exc)}); "
                    f"continuing without caching ({advice})")
        if isinstance(exc, OSError):
            reason = exc.strerror or _first_line(exc)
        else:  # torch's own words ("unexpected pos 13056 vs 13008") would puzzle
            reason = "the file was cut short: is the disk full?"
        return (f"cache: cannot write to {folder} ({reason}); continuing without caching "
                "(free some space or set KDTEACH_CACHE to a writable folder)")

    def load_or_build(self, name: str, key: dict, build):
        """The cached payload for ``(name, key)``, else ``build()`` — stored, then returned."""
        payload = self.load(name, key)
        if payload is None:
            payload = build()
            self.save(name, key, payload)
        return payload


def as_cache(cache) -> Cache:
    """Accept ``True``/``None`` (default folder), ``False`` (off), a path, or a Cache."""
    if isinstance(cache, Cache):
        return cache
    if cache is False:
        return Cache(enabled=False)
    if cache is True or cache is None:
        return Cache()
    return Cache(cache)
