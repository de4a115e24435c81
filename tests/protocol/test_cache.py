import errno
import os
import pickle
import threading
import warnings

import pytest
import torch

from kdteach.protocol.cache import Cache, CacheWarning, as_cache, default_cache_dirs, key_hash

KEY = {"what": "teacher", "run": 0, "epochs": 3}
PAYLOAD = {"state": {"w": torch.arange(6.0).reshape(2, 3)}, "note": "ok", "n": [1, 2]}


def test_round_trip_and_key_in_file_name(tmp_path):
    cache = Cache(tmp_path)
    path = cache.save("teacher-run0", KEY, PAYLOAD)
    assert path.name == f"teacher-run0-{key_hash({**KEY})}.pt"
    loaded = cache.load("teacher-run0", KEY)
    assert torch.equal(loaded["state"]["w"], PAYLOAD["state"]["w"])
    assert loaded["note"] == "ok" and loaded["n"] == [1, 2]


def test_other_settings_miss(tmp_path):
    cache = Cache(tmp_path)
    cache.save("teacher-run0", KEY, PAYLOAD)
    assert cache.load("teacher-run0", {**KEY, "epochs": 4}) is None


def test_file_from_other_settings_under_right_name_is_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    other = {**KEY, "epochs": 99}
    src = cache.save("teacher-run0", other, PAYLOAD)
    os.replace(src, cache.path("teacher-run0", KEY))  # a stale file under the expected name
    with pytest.warns(CacheWarning, match="other settings"):
        assert cache.load("teacher-run0", KEY) is None


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 10, b"not a torch file at all", "truncated"],
    ids=["zero-byte", "zeros", "garbage", "truncated"],
)
def test_corrupt_files_are_reported_and_rebuilt(tmp_path, content):
    cache = Cache(tmp_path)
    path = cache.save("teacher-run0", KEY, PAYLOAD)
    if content == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.warns(CacheWarning, match="rebuilding"):
        assert cache.load("teacher-run0", KEY) is None
    calls = []
    with pytest.warns(CacheWarning):
        out = cache.load_or_build("teacher-run0", KEY, lambda: calls.append(1) or PAYLOAD)
    assert calls == [1] and out is PAYLOAD
    assert cache.load("teacher-run0", KEY)["note"] == "ok"  # rebuilt entry is valid


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_loads_never_unpickle_arbitrary_objects(tmp_path):
    cache = Cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    path = cache.path("teacher-run0", KEY)
    path.parent.mkdir()
    torch.save({"key": "x", "payload": Evil(marker)}, path)
    with pytest.warns(CacheWarning):
        assert cache.load("teacher-run0", KEY) is None
    assert not marker.exists()
    pickle.loads(pickle.dumps(Evil(marker)))  # the object really would run code if unpickled
    assert marker.exists()


def test_not_a_cache_entry(tmp_path):
    cache = Cache(tmp_path)
    torch.save({"weights": torch.ones(2)}, cache.path("x", KEY))
    with pytest.warns(CacheWarning, match="not a kdteach cache entry"):
        assert cache.load("x", KEY) is None


def test_disabled_cache_reads_and_writes_nothing(tmp_path):
    cache = as_cache(False)
    assert not cache.enabled
    assert cache.save("x", KEY, PAYLOAD) is None
    assert cache.load("x", KEY) is None
    calls = []
    cache.load_or_build("x", KEY, lambda: calls.append(1) or PAYLOAD)
    cache.load_or_build("x", KEY, lambda: calls.append(1) or PAYLOAD)
    assert calls == [1, 1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_is_bypassed_with_one_warning(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        cache = Cache(folder)
        with pytest.warns(CacheWarning, match="cannot write"):
            assert cache.save("x", KEY, PAYLOAD) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cache.save("x", KEY, PAYLOAD) is None  # warned once only
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_is_bypassed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = Cache(blocker / "cache")
    with pytest.warns(CacheWarning, match="continuing without caching"):
        assert cache.save("x", KEY, PAYLOAD) is None
    assert cache.load_or_build("x", KEY, lambda: PAYLOAD) is PAYLOAD


def test_missing_folder_is_created(tmp_path):
    cache = Cache(tmp_path / "a" / "b")
    assert cache.save("x", KEY, PAYLOAD).exists()


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = Cache(tmp_path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.save("x", KEY, PAYLOAD)
    assert list(tmp_path.iterdir()) == []


def test_two_writers_of_one_entry_leave_a_valid_file(tmp_path):
    errors = []

    def write(value):
        try:
            for _ in range(20):
                Cache(tmp_path).save("x", KEY, {"state": {"w": torch.full((200, 200), value)}})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(float(v),)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    w = Cache(tmp_path).load("x", KEY)["state"]["w"]
    assert torch.all(w == w[0, 0]) and float(w[0, 0]) in (1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == [Cache(tmp_path).path("x", KEY).name]


def test_default_folder_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "here"))
    assert default_cache_dirs() == [tmp_path / "here"]
    assert as_cache(True).folder == tmp_path / "here"
    monkeypatch.delenv("KDTEACH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dirs() == [tmp_path / "xdg" / "kdteach"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dirs() == [tmp_path / "home" / ".cache" / "kdteach"]


# ---------------------------------------------------------------- a file system that refuses

ZIP_WRITER_FAILURE = "[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 742"


def refusing_save(error):
    """A torch.save that writes part of the entry, then fails as a full disk makes it."""

    def save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half an entry")
        raise error

    return save


@pytest.mark.parametrize(
    "error",
    [OSError(code, os.strerror(code))
     for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)]
    + [RuntimeError(ZIP_WRITER_FAILURE)],
    ids=["ENOSPC", "EDQUOT", "EROFS", "EACCES", "EIO", "zip-writer"],
)
def test_refused_write_leaves_nothing_and_warns_once(tmp_path, monkeypatch, error):
    cache = Cache(tmp_path)
    monkeypatch.setattr(torch, "save", refusing_save(error))
    with pytest.warns(CacheWarning) as caught:
        assert cache.save("x", KEY, PAYLOAD) is None
    assert len(caught) == 1
    message = str(caught[0].message)
    reason = "the file was cut short: is the disk full?"  # torch's own words would puzzle
    if isinstance(error, OSError):
        reason = error.strerror
    advice = "(free some space or set KDTEACH_CACHE to a writable folder)"
    if isinstance(error, OSError) and error.errno in (errno.EROFS, errno.EACCES):
        # never "free some space" for a folder that is not the user's to write
        advice = ("(the folder is not writable for you: to cache your own work too, set "
                  f"KDTEACH_CACHE to a folder of yours followed by this one "
                  f"(e.g. ~/kdteach-cache{os.pathsep}{tmp_path}))")
    assert message == (
        f"cache: cannot write to {tmp_path} ({reason}); continuing without caching {advice}"
    )
    assert caught[0].filename == "kdteach"  # no line of kdteach's source shown beside it
    assert list(tmp_path.iterdir()) == []  # no partial entry, no temporary file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later saves are skipped silently
        assert cache.save("y", KEY, PAYLOAD) is None
        assert cache.load_or_build("z", KEY, lambda: PAYLOAD) is PAYLOAD
    assert list(tmp_path.iterdir()) == []


def test_a_failure_that_is_not_the_file_system_is_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", refusing_save(RuntimeError("cannot pickle 'generator'")))
    with pytest.raises(RuntimeError, match="cannot pickle"):
        Cache(tmp_path).save("x", KEY, PAYLOAD)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_at_fsync_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.warns(CacheWarning, match="No space left on device"):
        assert Cache(tmp_path).save("x", KEY, PAYLOAD) is None
    assert list(tmp_path.iterdir()) == []


def test_results_are_the_same_with_a_full_disk(tmp_path, monkeypatch):
    """The cache only saves time: a run whose every save fails gives the same numbers as
    a run that writes its checkpoints and a run that reads them back."""
    from kdteach.protocol.experiment import Experiment
    from kdteach.protocol.settings import get_settings

    settings = get_settings("quick", "cpu", epochs_teacher=2, epochs_student=2)

    def results(cache):
        return Experiment(settings, cache=cache, progress=False).run("standard_teacher").results

    writing = results(Cache(tmp_path / "ok"))
    reading = results(Cache(tmp_path / "ok"))
    with monkeypatch.context() as m:
        m.setattr(torch, "save", refusing_save(OSError(errno.ENOSPC, "No space left on device")))
        with pytest.warns(CacheWarning, match="No space left on device"):
            full = results(Cache(tmp_path / "full"))
    assert list((tmp_path / "full").iterdir()) == []
    assert len(list((tmp_path / "ok").glob("*.pt"))) == 3  # two teachers, one stage
    assert full == writing == reading


# ---------------------------------------------------------------- a shared cache under one's own


def test_a_read_only_shared_folder_is_read_and_the_learners_own_folder_written(
        tmp_path, monkeypatch):
    shared, own = tmp_path / "shared", tmp_path / "own"
    Cache(shared).save("teacher-run0", KEY, PAYLOAD)  # the lecturer filled it
    monkeypatch.setenv("KDTEACH_CACHE", f"{own}{os.pathsep}{shared}")
    cache = as_cache(True)
    assert cache.folders == [own, shared]
    loaded = cache.load("teacher-run0", KEY)  # read from the shared folder
    assert torch.equal(loaded["state"]["w"], PAYLOAD["state"]["w"])
    assert cache.save("students-x", KEY, PAYLOAD).parent == own  # new work: the learner's own


def test_a_folder_that_refuses_is_passed_over_quietly(tmp_path, monkeypatch):
    shared, own = tmp_path / "shared", tmp_path / "own"
    real = torch.save

    def refuse_in_shared(obj, f, *args, **kwargs):
        if str(shared) in str(getattr(f, "name", "")):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", refuse_in_shared)
    cache = Cache([shared, own])  # the read-only folder first, by mistake
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only folder in the list is not a warning
        path = cache.save("x", KEY, PAYLOAD)
    assert path.parent == own and not list(shared.glob("*.pt"))
