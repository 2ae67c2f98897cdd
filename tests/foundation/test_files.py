"""Atomic files: a reader sees the old content or the new, never half, and no temporary is
left behind whether the write succeeds or fails."""

from __future__ import annotations

import pytest

from i2vkit import files


def test_write_text_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "env" / "pip.conf"
    files.write_text(target, "one\n")
    files.write_text(target, "two\n", mode=0o644)
    assert target.read_text() == "two\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["pip.conf"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    files.write_text(target, "old")
    with pytest.raises(RuntimeError), files.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "models" / "demo"
    with files.replacing_folder(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError), files.replacing_folder(target) as tmp:
        (tmp / "b").write_text("2")
        raise ValueError("the build failed")
    assert [p.name for p in target.iterdir()] == ["a"]
    with files.replacing_folder(target) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]
    assert [p.name for p in target.parent.iterdir()] == ["demo"]
