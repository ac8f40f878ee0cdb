"""Residual points and the harvest: the stream at the labelled tokens, every point, one pass.

Residual point ``L`` is the stream entering block ``L`` (``blocks.L.hook_resid_pre``;
0 = token + position embeddings) and ``L = n_layers`` the stream after the last block."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner, resid_hook
from ...progress import bar as progress_bar

def check_points(n_layers: int, layers: Sequence[int] | None, label: str = "the model") -> list[int]:
    """Sorted, unique residual points; all ``0..n_layers`` when ``layers`` is empty."""
    if not layers:
        return list(range(n_layers + 1))
    out = sorted(set(int(l) for l in layers))
    for l in out:
        if not 0 <= l <= n_layers:
            raise InvalidInputError(
                f"layer {l} is out of range: {label} has residual points 0..{n_layers} "
                f"(0 = embeddings, {n_layers} = after the last block)"
            )
    return out


# ----------------------------------------------------------------------------- harvest


def harvest(
    runner: Runner,
    tokens: Sequence[Sequence[int]],
    prompt: np.ndarray,
    pos: np.ndarray,
    layers: Sequence[int],
    batch_size: int = 64,
    progress: bool | None = None,
) -> np.ndarray:
    """Residual vectors at rows ``(prompt[i], pos[i])`` for every point in ``layers``: ``[layer, row, d_model]``.

    Prompts are run grouped by length (no padding) with read-only edits that copy only the
    requested rows out of each batch, so nothing else is stored, and each pass stops at the
    deepest point requested. When every block runs anyway (the last point is requested)
    and the prompts open with the same tokens, that shared prefix is run once and its keys
    and values reused (:meth:`~poslens.models.runner.Runner.prefix`), so only the words run
    per prompt.

    >>> X = harvest(runner, ps.tokens, pts["prompt"], pts["pos"], layers=[0, 4])   # doctest: +SKIP
    """
    cfg = runner.cfg
    prompt = np.asarray(prompt, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    hooks = [resid_hook(l, n_layers=cfg.n_layers) for l in layers]
    slot = {h: i for i, h in enumerate(hooks)}
    out = np.empty((len(layers), len(prompt), cfg.d_model), dtype=np.float32)
    lengths = np.array([len(t) for t in tokens])
    if len(prompt) and (pos.min() < 0 or (pos >= lengths[prompt]).any()):
        raise InvalidInputError("a harvested position lies outside its prompt")
    show = len(tokens) > 2000 if progress is None else progress
    bar = progress_bar(total=len(tokens), desc="harvest", unit="prompt", leave=False, disable=not show)
    shared = _shared_prefix(tokens) if max(layers, default=0) == cfg.n_layers and len(tokens) > 1 else 0
    shared = min(shared, int(pos.min()) if len(pos) else 0)  # every harvested row must lie after the prefix
    prefix = runner.prefix(list(tokens[0][:shared])) if shared >= 2 else None
    shared = shared if prefix is not None else 0
    local = np.full(len(tokens), -1)
    for L in np.unique(lengths):
        group = np.flatnonzero(lengths == L)
        local[:] = -1
        local[group] = np.arange(len(group))
        rows = np.flatnonzero(local[prompt] >= 0)
        if len(rows) == 0:
            continue
        lp, pp = local[prompt[rows]], pos[rows]

        pp = pp - shared

        def gather(act: torch.Tensor, hook, rows=rows, lp=lp, pp=pp) -> None:
            s, e = hook.batch.start, hook.batch.stop
            sel = (lp >= s) & (lp < e)
            out[slot[hook.name], rows[sel]] = act[torch.as_tensor(lp[sel] - s), torch.as_tensor(pp[sel])].float().cpu().numpy()

        t = torch.tensor([tokens[i][shared:] for i in group], dtype=torch.long)
        runner.run(t, edits={h: gather for h in hooks}, batch_size=batch_size, progress=False, prefix=prefix)
        bar.update(len(group))
    bar.close()
    return out



def _shared_prefix(tokens: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt has in common (``commonprefix`` compares any sequences item by item)."""
    return len(os.path.commonprefix([list(t) for t in tokens]))
