"""Whole-folder replacement: a reader, or a run killed at any point, never finds a mix of two folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from poslens.io import recover_dir, recover_dirs, replace_dir


def _folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (path / name.replace("__", "/")).write_text(text)
    return path


def _tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_replace_dir_swaps_in_the_new_files_and_carries_the_rest(tmp_path):
    m = _folder(tmp_path / "model", config="1", weights="1", history__manifest="h")
    with replace_dir(m) as new:
        assert new.parent == tmp_path and _tree(m) == {"config": "1", "weights": "1", "history/manifest": "h"}
        _folder(new, config="2", weights="2")
    assert _tree(m) == {"config": "2", "weights": "2", "history/manifest": "h"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_dir_that_fails_midway_keeps_the_old_folder(tmp_path):
    m = _folder(tmp_path / "model", config="1", weights="1")
    with pytest.raises(OSError, match="disk full"):
        with replace_dir(m) as new:
            _folder(new, weights="2")
            raise OSError("disk full")
    assert _tree(m) == {"config": "1", "weights": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_recover_dir_after_a_kill_while_the_new_folder_was_filled(tmp_path):
    m = _folder(tmp_path / "model", config="1", weights="1")
    _folder(tmp_path / ".model.new", weights="2")
    recover_dir(m)
    assert _tree(m) == {"config": "1", "weights": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_recover_dir_after_a_kill_between_the_swaps_renames(tmp_path):
    """The old folder was moved aside (part of what it carries may already be in the new one): the
    new one was complete, so the swap is finished."""
    _folder(tmp_path / ".model.old", config="1", weights="1", history__a="a", history2__b="b")
    _folder(tmp_path / ".model.new", config="2", weights="2", history__a="a")
    recover_dir(tmp_path / "model")
    assert _tree(tmp_path / "model") == {"config": "2", "weights": "2", "history/a": "a", "history2/b": "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_recover_dir_after_a_kill_while_the_old_folder_was_removed(tmp_path):
    _folder(tmp_path / "model", config="2", weights="2")
    _folder(tmp_path / ".model.old", weights="1")
    recover_dir(tmp_path / "model")
    assert _tree(tmp_path / "model") == {"config": "2", "weights": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_recover_dirs_touches_only_the_folders_it_is_asked_about(tmp_path):
    _folder(tmp_path / "step-000001", w="1")
    _folder(tmp_path / ".step-000001.new", w="half")
    _folder(tmp_path / ".step-000005.new", w="half")
    _folder(tmp_path / ".cache.old", x="someone else's")
    recover_dirs(tmp_path, "step-*")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.old", "step-000001"]
    assert _tree(tmp_path / "step-000001") == {"w": "1"}
    recover_dirs(tmp_path / "absent", "step-*")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names the fsync'd files through /proc (Linux)")
def test_new_files_reach_the_disk_before_they_replace_the_old_ones(tmp_path, monkeypatch):
    import os

    import torch

    from poslens.io import atomic_torch_save

    log = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (log.append(("replace", str(b))), real_replace(a, b)))
    dest = tmp_path / "model"
    with replace_dir(dest) as new:
        (new / "config.json").write_text("{}")
        (new / "sub").mkdir()
        (new / "sub" / "w.bin").write_bytes(b"1")
    swap = log.index(("replace", str(dest)))
    synced = {Path(p).name for kind, p in log[:swap] if kind == "fsync"}
    assert {"config.json", "w.bin", "sub"} <= synced  # every file and folder, before the swap
    assert ("fsync", str(tmp_path)) in log[swap:]  # then the parent's entry
    log.clear()
    atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "state.pt")
    assert [k for k, _ in log] == ["fsync", "replace", "fsync"] and log[-1][1] == str(tmp_path)
