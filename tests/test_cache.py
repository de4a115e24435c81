import os
import pickle
import threading
import warnings

import pytest
import torch

from kdteach.cache import Cache, CacheWarning, as_cache, default_cache_dir, key_hash

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
    assert default_cache_dir() == tmp_path / "here"
    assert as_cache(True).folder == tmp_path / "here"
    monkeypatch.delenv("KDTEACH_CACHE")
    assert default_cache_dir().name in ("artifacts", "kdteach")
