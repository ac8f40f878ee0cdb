"""Atomic writes: a file either has its old content or its complete new content.

:func:`replace_dir` does the same for a whole folder (a checkpoint directory): a reader,
or a run killed at any point, finds either the old set of files or the complete new one,
never a mix of the two; :func:`recover_dirs` finishes or undoes what a killed swap left.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InvalidInputError


def _tmp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the finished file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def writable_dir(path: str | Path, what: str) -> Path:
    """``path`` created (with its parents) and checked writable; one InvalidInputError saying ``what`` cannot be
    written there if not. (A report's ``out/cache`` is made by its first entry, so one that fails early leaves no
    empty folder.)"""
    d = Path(path)
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".poslens-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InvalidInputError(f"cannot write {what} to {d} ({exc.strerror or exc}); choose another --out") from None
    return d


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk (a folder's fsync is not allowed everywhere)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` that survives a crash of the machine too: a training state is flushed to
    the disk before it replaces the previous one (a rename alone can reach the disk before the
    data it names), and the folder's entry after."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        torch.save(obj, tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _dir_siblings(path: Path) -> tuple[Path, Path]:
    # Fixed names (not mkdtemp's) so the next run knows what a killed one left, and whose folder it was.
    return path.with_name("." + path.name + ".new"), path.with_name("." + path.name + ".old")


def _carry(old: Path, new: Path) -> None:
    for entry in old.iterdir():
        if not (new / entry.name).exists():
            os.replace(entry, new / entry.name)


@contextlib.contextmanager
def replace_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of the folder ``path`` to fill; when the block ends, it
    becomes ``path``. Entries of the old folder that the new one lacks are carried over (an
    exported model keeps its ``history/``), as rewriting the files in place would have left them.

    The old folder stays in place until the new one is complete and flushed to the disk; the
    swap is three renames, and :func:`recover_dir` completes one a kill cut short (until it
    does, ``path`` may be missing, never mixed).
    """
    path = Path(path)
    recover_dir(path)
    new, old = _dir_siblings(path)
    new.mkdir(parents=True)
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    for f in sorted(new.rglob("*")):
        _fsync(f)
    _fsync(new)
    if path.exists():
        os.replace(path, old)
        _carry(old, new)
    os.replace(new, path)
    _fsync(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: str | Path) -> None:
    """Leave ``path`` as the last folder :func:`replace_dir` completed, and no temporary sibling."""
    path = Path(path)
    new, old = _dir_siblings(path)
    if old.exists() and not path.exists():
        if new.exists():  # killed between the swap's renames; the new folder was complete before the first
            _carry(old, new)
            os.replace(new, path)
        else:
            os.replace(old, path)
    if old.exists():
        shutil.rmtree(old)
    if new.exists():  # killed while it was filled: the old folder still stands
        shutil.rmtree(new)


def recover_dirs(parent: str | Path, pattern: str) -> None:
    """:func:`recover_dir` for every folder in ``parent`` named like ``pattern`` (a glob) that a killed
    :func:`replace_dir` left temporaries of: those of a folder never written again would otherwise stay."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    names = {e.name[1:-4] for e in parent.iterdir() if e.is_dir() and e.name.startswith(".")
             and e.name.endswith((".new", ".old")) and fnmatch.fnmatchcase(e.name[1:-4], pattern)}
    for name in sorted(names):
        recover_dir(parent / name)
