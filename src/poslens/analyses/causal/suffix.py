"""Residual-stream patching sweeps that recompute only what a patch can change.

Patching position ``p`` at layer ``L`` leaves every layer below ``L`` and, because
attention is causal, every position before ``p`` exactly as in the base run. So a cell
starts at layer ``L`` from the base run's residual stream, computes only positions
``p..P-1``, and lets them attend to the base run's cached keys and values for positions
``0..p-1`` (the block's key/value prefix). Each layer is
:func:`poslens.models.block.block_forward` on the Runner's prepared tensors, the very
block the Runner runs, on fewer positions, in every family: a 12-layer x 128-position sweep costs about a quarter of running every cell in
full. All cells of one position (one per layer) share one batch: the batch grows by one
cell as each layer is reached.

Only hooks on the residual path can be patched (``hook_resid_pre|mid|post``,
``hook_attn_out``, ``hook_mlp_out``) and the metric must read one of :data:`METRIC_HOOKS`;
:func:`~poslens.analyses.causal.patching.patch_sweep` falls back to full runs otherwise,
and the tests check both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...models.block import block_forward, norm
from ...models.runner import Runner
from .intervention import resolve_positions
from .metrics import Metric

PATCH_HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
LAYER_METRIC_HOOKS = (*PATCH_HOOKS, "mlp.hook_pre", "mlp.hook_post")
METRIC_HOOKS = ("ln_final.hook_normalized", "logits")


def metric_layer(runner: Runner, metric: Metric) -> int | None:
    """The layer whose block holds the metric's hook (n_layers for final hooks); None if unsupported."""
    h = metric.hook
    if h in METRIC_HOOKS:
        return runner.cfg.n_layers
    if h.startswith("blocks."):
        _, l, tail = h.split(".", 2)
        if tail in LAYER_METRIC_HOOKS:
            return int(l)
    return None


def supported(runner: Runner, hook_type: str, metric: Metric) -> bool:
    return hook_type in PATCH_HOOKS and metric_layer(runner, metric) is not None


def cache_hooks(runner: Runner, first_layer: int, metric: Metric) -> list[str]:
    """Hooks the base run must keep for :func:`sweep_position`."""
    last = min(metric_layer(runner, metric), runner.cfg.n_layers - 1)
    hooks = []
    key = "attn.hook_rot_k" if runner.cfg.positional == "rotary" else "attn.hook_k"
    for l in range(first_layer, last + 1):
        hooks += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.{key}", f"blocks.{l}.attn.hook_v"]
    return [*hooks, metric.hook]


class _Done(Exception):
    def __init__(self, values):
        self.values = values


@dataclass
class _Patch:
    hook: str
    rows: slice
    value: torch.Tensor  # [rows, d_model]


def sweep_position(
    runner: Runner,
    cache,
    src: dict[int, torch.Tensor],
    hook_type: str,
    p: int,
    layers: list[int],
    metric: Metric,
    base_rows: torch.Tensor,
) -> dict[int, np.ndarray]:
    """Metric values for patching position ``p`` at each of ``layers`` (``{layer: [len(base_rows)]}``).

    ``cache``: the base run's activations (:func:`cache_hooks`); ``src[l]``: the source
    activation at ``blocks.{l}.{hook_type}``, position ``p``, ``[B_all, d_model]``.
    """
    dev, dt = runner.device, runner.dtype
    cfg = runner.cfg
    n = len(base_rows)
    stop = metric_layer(runner, metric)
    layers = sorted(layers)
    P = cache[f"blocks.{layers[0]}.hook_resid_pre"].shape[1]
    last, keep = _prunable(runner, metric, p, P, stop)
    order: list[int] = []
    x = None
    try:
        for l in range(layers[0], min(stop, cfg.n_layers - 1) + 1):
            patch = None
            if l in layers:
                new = cache[f"blocks.{l}.hook_resid_pre"][base_rows].to(dev, dt)[:, p:]
                x = new if x is None else torch.cat([x, new])
                order.append(l)
                patch = _Patch(f"blocks.{l}.{hook_type}", slice(x.shape[0] - n, x.shape[0]),
                               src[l][base_rows].to(dev, dt))
            rows = base_rows.repeat(len(order))
            x = _block(runner, l, x, p, rows, cache, patch, metric, keep if l == last else None)
        rows = base_rows.repeat(len(order))
        h = norm(cfg, x, runner.prepared("ln_final.w", "a LayerNorm"),
                 runner.prepared("ln_final.b", "a LayerNorm")) if cfg.final_norm else x
        if metric.hook == "logits":
            h = h @ runner.prepared("unembed.W_U", "logits") + runner.prepared("unembed.b_U", "logits")
        _read(metric, metric.hook, h, p, rows, cache)
    except _Done as done:
        vals = done.values.reshape(len(order), n)
        return {l: vals[i] for i, l in enumerate(order)}
    raise AssertionError("the metric hook was never reached")  # pragma: no cover


def _prunable(runner: Runner, metric: Metric, p: int, P: int, stop: int) -> tuple[int | None, torch.Tensor | None]:
    """The layer whose queries can be cut to the metric's positions (suffix-relative), if any.

    When the metric reads only some positions after the attention of layer ``stop`` (or
    after the final LayerNorm), that layer needs every suffix position's keys and values
    but the rest only at those positions.
    """
    # A resid_pre metric is read before its layer's attention (final hooks, stop == n_layers, never are).
    if metric.positions is None or metric.hook.endswith(".hook_resid_pre"):
        return None, None
    pos = resolve_positions(metric.positions, P, "read by the metric")
    return min(stop, runner.cfg.n_layers - 1), pos[pos >= p] - p


def _read(metric: Metric, name: str, t: torch.Tensor, p: int, rows: torch.Tensor, cache) -> None:
    if metric.hook != name:
        return
    prefix = cache[name][rows, :p].to(t.device, t.dtype)
    full = torch.cat([prefix, t], 1)
    raise _Done(metric.fn(full, rows).detach().double().cpu().numpy())


class _SuffixHooks:
    """The block's hooks in a suffix cell: apply the patch, read the metric (pruned positions as NaN)."""

    def __init__(self, pre, patch, metric, p, rows, cache, keep, S):
        self.pre, self.patch, self.metric, self.p, self.rows, self.cache = pre, patch, metric, p, rows, cache
        self.keep, self.S = keep, S

    def needs(self, name: str) -> bool:
        return False

    def full(self, t: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return t
        out = torch.full((t.shape[0], self.S, *t.shape[2:]), float("nan"), device=t.device, dtype=t.dtype)
        out[:, self.keep] = t
        return out

    def __call__(self, name: str, t: torch.Tensor) -> torch.Tensor:
        pruned = self.keep is not None and name != "hook_resid_pre"  # after attention only kept rows exist
        name = self.pre + name
        patch = self.patch
        if patch is not None and patch.hook == name:
            i = 0
            if pruned:
                hit = (self.keep == 0).nonzero()
                i = int(hit[0]) if len(hit) else None  # position p is not computed: its patch cannot matter
            if i is not None:
                t = t.clone()
                t[patch.rows, i] = patch.value
        if self.metric.hook == name:
            _read(self.metric, name, self.full(t) if pruned else t, self.p, self.rows, self.cache)
        return t


def _block(runner: Runner, l: int, x: torch.Tensor, p: int, rows: torch.Tensor, cache, patch: _Patch | None,
           metric: Metric, keep: torch.Tensor | None = None) -> torch.Tensor:
    """One block on suffix positions ``p..P-1`` of ``x`` [R, S, d], attending to the cached prefix.

    ``keep`` (suffix-relative indices): after the keys and values, compute only these
    positions (the last layer, when the metric reads only them); the others come back NaN.
    """
    cfg = runner.cfg
    S = x.shape[1]
    dev, dt = runner.device, runner.dtype
    keep = keep.to(dev) if keep is not None and len(keep) < S else None
    key = "attn.hook_rot_k" if cfg.positional == "rotary" else "attn.hook_k"
    past = (cache[f"blocks.{l}.{key}"][rows, :p].to(dev, dt), cache[f"blocks.{l}.attn.hook_v"][rows, :p].to(dev, dt))
    hooks = _SuffixHooks(f"blocks.{l}.", patch, metric, p, rows, cache, keep, S)
    out, _ = block_forward(cfg, l, runner.layer(l), x, rope=runner.rotary(p, S), past=past,
                           start=p, hooks=hooks, keep=keep)
    return hooks.full(out)
