"""Atomic writes: a folder is replaced whole or not at all, and its files are readable by other users."""
from __future__ import annotations

import stat

import pytest

from utils.atomic import atomic_directory, write_json


def test_a_failed_write_leaves_the_previous_folder_untouched(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("half-written")
        raise RuntimeError("crash mid-run")
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind


def test_a_completed_write_replaces_the_folder(tmp_path):
    target = tmp_path / "model"
    for content in ("old", "new"):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text(content)
    assert (target / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_leftovers_of_a_killed_run_are_cleaned_up(tmp_path):
    (tmp_path / ".model.tmp-abc").mkdir()
    with atomic_directory(tmp_path / "model") as staging:
        (staging / "a.txt").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_published_files_and_folders_are_world_readable(tmp_path):
    with atomic_directory(tmp_path / "model") as staging:
        write_json(staging / "m.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) & 0o005 == 0o005
    assert stat.S_IMODE((tmp_path / "model" / "m.json").stat().st_mode) & 0o004
