"""Ship a trained run as an embedded organism: its final model, its history and its card.

    python -m poslens.train.ship runs/tiny/model tiny       # -> src/poslens/models/embedded/tiny

Copies what a reader of the model needs (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``training_log.json`` and ``history/`` with its manifest and float16
snapshots; nothing of the trainer's resumable state), then measures it and writes
``MODEL.md`` (:mod:`poslens.train.card`). The destination is replaced only once the copy
is complete, so an interrupted ship leaves the old organism in place.

>>> ship("runs/tiny/model", "tiny")                      # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..errors import InvalidInputError, PoslensError

FILES = ("config.json", "model.safetensors", "tokenizer.json", "training_log.json")


def ship(model_dir: str | Path, name: str, dest_root: str | Path | None = None, notes: str = "") -> Path:
    """Copy ``model_dir`` (a ``poslens train`` export with its history) to ``dest_root/name`` and write its card."""
    from ..models.registry import EMBEDDED_DIR
    from .card import write_card
    from .history import read_manifest, snapshot_dirs

    src = Path(model_dir)
    missing = [f for f in FILES if not (src / f).is_file()]
    if missing:
        raise InvalidInputError(f"{src} is not a poslens train export (missing {', '.join(missing)})")
    read_manifest(src)  # a shipped organism carries its history
    dest = Path(dest_root or EMBEDDED_DIR) / name
    tmp = dest.with_name(dest.name + ".shipping")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for f in FILES:
            shutil.copy2(src / f, tmp / f)
        (tmp / "history").mkdir()
        shutil.copy2(src / "history" / "manifest.json", tmp / "history" / "manifest.json")
        for _, d in snapshot_dirs(src):
            shutil.copytree(d, tmp / "history" / d.name)
        write_card(tmp, notes, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m poslens.train.ship", description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="A `poslens train --snapshots N` run's model/ folder.")
    ap.add_argument("name", help="The registered name of the organism (a folder of models/embedded).")
    ap.add_argument("--dest", default=None, help="Where organisms live (default: the package's models/embedded).")
    ap.add_argument("--notes", default=None, help="A Markdown file appended to the card.")
    a = ap.parse_args(argv)
    try:
        print(ship(a.model_dir, a.name, a.dest, Path(a.notes).read_text() if a.notes else ""))
    except PoslensError as exc:
        ap.error(str(exc))  # one line and status 2, as poslens's own commands


if __name__ == "__main__":
    main(sys.argv[1:])
