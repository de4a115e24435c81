"""The one atomic writer: a target is the old file or the new one, never half of either."""

import os
import stat

import pytest

from kdteach.protocol.files import (
    PartlyReplaced,
    write_all_atomic,
    write_atomic,
    write_text_atomic,
)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_text_is_written_whole(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n" and leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def half(tmp):
        with open(tmp, "w") as f:
            f.write("new, but")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomic(path, half)
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_new_file_gets_the_usual_mode_and_a_replaced_one_keeps_its_own(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    new = write_text_atomic(tmp_path / "new.html", "x")  # mkstemp alone would give 0600
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask
    kept = tmp_path / "kept.sh"
    kept.write_text("x")
    kept.chmod(0o750)
    write_text_atomic(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o750 and kept.read_text() == "y"


def test_several_files_are_all_written_or_none_changes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a")

    def fail(tmp):
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        write_all_atomic([(a, lambda tmp: open(tmp, "w").write("new a")), (b, fail)])
    assert a.read_text() == "old a" and not b.exists() and leftovers(tmp_path) == []
    written = write_all_atomic([(a, lambda tmp: open(tmp, "w").write("new a")),
                                (b, lambda tmp: open(tmp, "w").write("new b"))])
    assert written == [a, b] and a.read_text() == "new a" and b.read_text() == "new b"


def test_a_failed_rename_says_the_targets_are_mixed(tmp_path, monkeypatch):
    calls = []
    real = os.replace

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(30, "Read-only file system")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(PartlyReplaced, match="Read-only"):
        write_all_atomic([(tmp_path / "a", lambda tmp: open(tmp, "w").write("a")),
                          (tmp_path / "b", lambda tmp: open(tmp, "w").write("b"))])
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert leftovers(tmp_path) == []
