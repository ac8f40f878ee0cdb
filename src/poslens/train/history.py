"""A training run's history: log-spaced float16 snapshots of the whole model, beside it.

Layout (``poslens train --snapshots N`` writes it; everything that reads a run's history
goes through :func:`read_manifest` / :func:`snapshot_dirs`)::

    model/                          the final model (float32), as exported by the trainer
      config.json  model.safetensors  tokenizer.json  training_log.json
      history/
        manifest.json               {"format": "poslens-history/1", "dtype": "float16",
                                     "snapshots": [{"step", "tokens_seen", "dir", "val_loss"}, ...]}
        step-000000/                step 0 = the initialisation
          config.json  model.safetensors (float16)  tokenizer.json
          training_log.json         {"step", "tokens_seen", "val_loss", "snapshot": true}
        step-000001/ ... step-NNNNNN/   (the last one is the final step)

Each ``step-N`` folder is an ordinary checkpoint directory (any poslens command loads it
with ``--model DIR``, and its name tells helix sweeps the step); the manifest lists them in
step order with the tokens seen and the held-out loss at that step. Steps are
:func:`snapshot_steps`: 0, then N - 1 steps spaced evenly in log(step) from 1 to the last,
so the early steps where circuits form are as well sampled as the long tail.

>>> snapshot_steps(8, 1000)
[0, 1, 3, 7, 19, 52, 139, 373, 1000]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..io import atomic_write_text, replace_dir

FORMAT = "poslens-history/1"
MANIFEST = "manifest.json"


def snapshot_steps(n: int, max_steps: int) -> list[int]:
    """Step 0 and ``n`` distinct steps log-spaced from 1 to ``max_steps`` (fewer only when there are fewer steps).

    ``n`` counts the snapshots after initialisation, so ``n + 1`` folders are written. Where
    rounding would repeat a small step, the next free step is taken, so early training is
    sampled densely without duplicates.
    """
    if n <= 0:
        return []
    if max_steps < 1:
        raise InvalidInputError(f"snapshots need max_steps >= 1 (got {max_steps})")
    n = min(n, max_steps)
    steps: list[int] = []
    for s in np.geomspace(1, max_steps, n):
        steps.append(max(int(round(s)), steps[-1] + 1 if steps else 1))
    # Pushing small steps up may run past the end; pull the tail back below it.
    steps[-1] = max_steps
    for i in range(len(steps) - 2, -1, -1):
        steps[i] = min(steps[i], steps[i + 1] - 1)
    return [0] + steps


def history_dir(model_dir: str | Path) -> Path:
    """``model_dir``'s history folder; ``model_dir`` may also be the run's --out, which holds the model in model/."""
    d = Path(model_dir)
    if not (d / "history").is_dir() and (d / "model" / "history").is_dir():
        return d / "model" / "history"
    return d / "history"


def read_manifest(model_dir: str | Path) -> dict:
    """The manifest of ``model_dir``'s history; InvalidInputError if it has none."""
    path = history_dir(model_dir) / MANIFEST
    if not path.is_file():
        raise InvalidInputError(
            f"{model_dir} has no training history ({path} is missing); train with `poslens train --snapshots N`"
        )
    m = json.loads(path.read_text())
    if m.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a poslens history manifest (format {m.get('format')!r}, want {FORMAT})")
    return m


def snapshot_dirs(model_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every snapshot, in step order."""
    h = history_dir(model_dir)
    return [(int(s["step"]), h / s["dir"]) for s in sorted(read_manifest(model_dir)["snapshots"], key=lambda s: s["step"])]


def write_snapshot(model, tok, model_dir: Path, step: int, tokens_seen: int, val_loss: float | None) -> Path:
    """Write ``model`` at ``step`` as a float16 checkpoint folder and record it in the manifest (atomically)."""
    import torch
    from safetensors.torch import save_file

    h = history_dir(model_dir)
    name = f"step-{step:06d}"
    dest = h / name
    with replace_dir(dest) as tmp:
        sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.hf_state_dict().items()}
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt", "step": str(step)})
        (tmp / "config.json").write_text(json.dumps(model.cfg.to_hf_dict(), indent=2))
        tok.save(tmp)
        # Readers that take a checkpoint folder's step and tokens from its training log (helix sweeps, `poslens sweep`).
        (tmp / "training_log.json").write_text(json.dumps(
            {"step": step, "tokens_seen": tokens_seen, "val_loss": val_loss, "snapshot": True, "dtype": "float16"},
            indent=2))
    path = h / MANIFEST
    m = json.loads(path.read_text()) if path.is_file() else {"format": FORMAT, "dtype": "float16", "snapshots": []}
    m["snapshots"] = [s for s in m["snapshots"] if s["step"] != step]
    m["snapshots"].append({"step": step, "tokens_seen": tokens_seen, "dir": name, "val_loss": val_loss})
    m["snapshots"].sort(key=lambda s: s["step"])
    atomic_write_text(path, json.dumps(m, indent=2))
    return dest


def has_snapshot(model_dir: Path, step: int) -> bool:
    path = history_dir(model_dir) / MANIFEST
    return path.is_file() and any(s["step"] == step for s in json.loads(path.read_text())["snapshots"])
