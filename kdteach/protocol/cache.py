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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import torch

from kdteach.protocol.files import write_atomic

FORMAT_VERSION = 1


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


def _save_entry(entry: dict, path) -> None:
    with open(path, "wb") as f:
        torch.save(entry, f)


def default_cache_dir() -> Path:
    env = os.environ.get("KDTEACH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "kdteach"


def key_hash(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Cache:
    """``Cache(folder)``; ``Cache(None)`` is the default folder; ``Cache(False)`` is off."""

    def __init__(self, folder=None, enabled: bool = True):
        self.enabled = enabled and folder is not False
        self.folder = Path(folder) if isinstance(folder, (str, Path)) else default_cache_dir()
        self._write_failed = False

    def __repr__(self):
        return f"Cache({str(self.folder)!r}, enabled={self.enabled})"

    def path(self, name: str, key: dict) -> Path:
        return self.folder / f"{name}-{key_hash(key)}.pt"

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
        """Store ``payload`` atomically. When the file system refuses (no space, quota,
        read-only, permissions, I/O error), remove the partial file, warn once and go on
        without caching: later saves are skipped, the run itself is unaffected."""
        if not self.enabled or self._write_failed:
            return None
        path = self.path(name, key)
        full_key = {"format": FORMAT_VERSION, **key}
        entry = {"key": json.dumps(full_key, sort_keys=True, default=str), "payload": payload}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return write_atomic(path, lambda tmp: _save_entry(entry, tmp))
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not _WRITE_FAILURE.search(str(exc)):
                raise  # not the file system: a bug, to be seen
            self._write_failed = True
            if isinstance(exc, OSError):
                reason = exc.strerror or _first_line(exc)
            else:  # torch's own words ("unexpected pos 13056 vs 13008") would puzzle
                reason = "the file was cut short: is the disk full?"
            warnings.warn(
                f"cache: cannot write to {self.folder} ({reason}); continuing without caching "
                "(free some space or set KDTEACH_CACHE to a writable folder)",
                CacheWarning,
                stacklevel=2,
            )
            return None

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
