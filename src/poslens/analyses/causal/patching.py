"""Activation patching between a clean and a corrupted input: residual (layer x position) and head sweeps.

``denoise`` (the default, the field's usual direction) runs the corrupted input and
patches in one clean activation per cell; ``noise`` runs the clean input and patches in
the corrupted one. Either way a cell's number is normalised as the field does,

    normalised = (patched - corrupted) / (clean - corrupted)

so 0 means "the corrupted metric" and 1 "the clean metric"; the raw metric values are
kept too (means over the batch of prompt pairs; the metric must be a scalar per pair).

Cells are batched: every cell of one layer is a copy of the input in one batch, and a run
starts at the patched layer from the base run's residual stream (layers below cannot
change). Residual sweeps go further (:mod:`.suffix`): only the positions at and after the
patched one are recomputed. Cells that cannot affect the metric (a patch after the
metric's hook, or at a position after every position the metric reads) are not run;
their value is the base metric exactly, and ``skipped`` marks them.

>>> m = logit_diff(w, good=" Mary", bad=" John", tokenizer=tok)                   # doctest: +SKIP
>>> r = patch_sweep(Runner(w), clean_ids, corrupted_ids, m, hook="resid_pre")    # doctest: +SKIP
>>> r.normalized[layer][position]                                               # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner
from ...models.tokenizer import as_tokenizer
from ...options import one_of
from ...progress import bar
from ...results import Result
from ..reach import as_runner
from .intervention import resolve_positions
from .metrics import Metric, MetricRecord, MetricStore, check_metric
from .run import as_run_kwargs, build_edits, input_shape
from .suffix import PATCH_HOOKS, cache_hooks, supported, sweep_position

MODES = ("denoise", "noise")
HEAD_HOOKS = ("z", "q", "k", "v", "result")


@dataclass(frozen=True)
class PatchCell:
    """One cell of the sweep: its layer and position (residual sweep) or head (head sweep), and the
    normalised and raw effect."""

    layer: int
    normalized: float
    raw: float
    position: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class PatchResult(Result):
    """A patching sweep: ``normalized[i][j]`` and ``raw[i][j]`` for row ``i`` (a layer) and column
    ``j`` (a position for ``sweep="resid"``, a head for ``sweep="heads"``)."""

    kind = "patching"
    sweep: str = "resid"
    hook: str = ""
    mode: str = "denoise"
    layers: list[int] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)
    column_labels: list[str] = field(default_factory=list)
    positions: list[int] | None = None
    metric: MetricRecord | None = None
    clean_metric: float = float("nan")
    corrupted_metric: float = float("nan")
    raw: list[list[float]] = field(default_factory=list)
    normalized: list[list[float]] = field(default_factory=list)
    skipped: list[list[bool]] = field(default_factory=list)
    top: list[PatchCell] = field(default_factory=list)  # the cells moved furthest from the unpatched run, largest first
    n_pairs: int = 0
    clean_tokens: list[str] = field(default_factory=list)
    corrupted_tokens: list[str] = field(default_factory=list)
    method: str = ""
    cells_run: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def grid(self, normalized: bool = True) -> np.ndarray:
        return np.array(self.normalized if normalized else self.raw, dtype=float)


def _check_inputs(runner: Runner, clean, corrupted, metric: Metric) -> tuple[dict, dict, int, int]:
    kc, kx = as_run_kwargs(clean), as_run_kwargs(corrupted)
    (Bc, Pc), (Bx, Px) = input_shape(kc), input_shape(kx)
    if Pc != Px:
        raise InvalidInputError(f"the clean input has {Pc} positions and the corrupted input {Px}; patching position by "
                                "position needs inputs of the same length (pad or choose prompts that tokenize alike)")
    if Bc != Bx:
        raise InvalidInputError(f"the clean input has {Bc} sequences and the corrupted input {Bx}; give one corrupted "
                                "sequence per clean one")
    if set(kc) != set(kx):
        raise InvalidInputError("clean and corrupted inputs must be of the same kind (both tokens or both embeddings)")
    runner.check_hook(check_metric(metric).hook)
    if metric.shape != ():
        raise InvalidInputError(f"patching needs a metric with one number per sequence; '{metric.name}' has shape "
                                f"{list(metric.shape)} (reduce it, e.g. pick one neuron or one head)")
    return kc, kx, Bc, Pc


def _metric_reach(runner: Runner, metric: Metric, P: int) -> tuple[Callable[[str], bool], int]:
    """Whether a hook runs no later than the metric's, and the last position the metric reads."""
    names = runner.hook_names()
    m_idx = names.index(metric.hook)
    qmax = P - 1 if metric.positions is None else int(resolve_positions(metric.positions, P, "read by the metric").max())
    return (lambda hook: names.index(hook) <= m_idx), qmax


def _layers(runner: Runner, layers: Sequence[int] | None) -> list[int]:
    n = runner.cfg.n_layers
    out = list(range(n)) if layers is None else sorted({int(l) for l in layers})
    for l in out:
        if not 0 <= l < n:
            raise InvalidInputError(f"layer {l} does not exist: the model has layers 0..{n - 1}")
    if not out:
        raise InvalidInputError("no layers to sweep")
    return out


def _metric_run(runner: Runner, kw: dict, metric: Metric, hooks: list[str], batch_size: int | None):
    """One run of an input: its metric values per sequence and the activations at ``hooks``."""
    B, _ = input_shape(kw)
    store = MetricStore([metric], B, B)
    acts = runner.run(**kw, hooks=hooks, edits=build_edits([], store.readers()), batch_size=batch_size)
    return store.values[metric.name], acts


def _metric_runs(runner: Runner, kc: dict, kx: dict, mode: str, metric: Metric, src_hooks: list[str],
                 base_hooks: list[str], batch_size: int | None):
    """The source and base runs: their activations, then the clean, corrupted and base metric values."""
    base_kw, src_kw = (kx, kc) if mode == "denoise" else (kc, kx)
    src_vals, src_acts = _metric_run(runner, src_kw, metric, src_hooks, batch_size)
    base_vals, base_acts = _metric_run(runner, base_kw, metric, base_hooks, batch_size)
    clean_vals, corrupt_vals = (src_vals, base_vals) if mode == "denoise" else (base_vals, src_vals)
    return src_acts, base_acts, clean_vals, corrupt_vals, base_vals


def _normalise(raw: np.ndarray, clean: float, corrupt: float) -> tuple[np.ndarray, str | None]:
    denom = clean - corrupt
    if not np.isfinite(denom) or abs(denom) <= 1e-12 * max(1.0, abs(clean), abs(corrupt)):
        return np.full_like(raw, np.nan), (f"the clean and corrupted metrics are equal ({clean:.6g}); normalised values "
                                           "are undefined (the inputs do not differ in what the metric measures)")
    return (raw - corrupt) / denom, None


def _run_cells(runner: Runner, start: torch.Tensor, layer: int, hook: str,
               patch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None], n_cells: int, metric: Metric,
               batch_size: int | None, max_rows: int = 2048) -> np.ndarray:
    """Metric ``[n_cells, B]`` for cells patched at ``hook`` by ``patch(act, cell_ids, base_ids)``, starting at ``layer``."""
    B = start.shape[0]
    out = np.empty((n_cells, B))
    per = max(1, max_rows // B)
    for c0 in range(0, n_cells, per):
        c1 = min(n_cells, c0 + per)
        k = c1 - c0
        store = MetricStore([metric], k * B, B)

        readers = store.readers()
        same = readers.pop(hook, [])

        def edit(act, ctx, c0=c0, same=same):
            rows = torch.arange(ctx.batch.start, ctx.batch.stop)
            out = act.clone()
            patch(out, rows // B + c0, rows % B)
            for r in same:  # a metric reading the patched hook sees the patch
                r(out, ctx)
            return out

        edits = build_edits([], readers)
        edits[hook] = edit
        runner.run(resid=start.repeat(k, 1, 1), start_at_layer=layer, edits=edits, batch_size=batch_size or 64,
                   progress=False)
        out[c0:c1] = store.by_variant(k)[metric.name]
    return out


def patch_sweep(
    runner: Runner,
    clean,
    corrupted,
    metric: Metric,
    *,
    hook: str = "resid_pre",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    mode: str = "denoise",
    method: str = "auto",
    batch_size: int | None = None,
    tokenizer=None,
    progress: bool | None = None,
) -> PatchResult:
    """Patch the residual stream at ``blocks.L.hook_{hook}`` one (layer, position) cell at a time.

    ``hook``: resid_pre, resid_mid, resid_post, attn_out or mlp_out; ``layers`` and
    ``positions`` default to all; ``method``: ``suffix`` (recompute only positions at and
    after the patch), ``full`` (every cell a full run from the patched layer), ``auto``.

    >>> r = patch_sweep(runner, clean, corrupted, metric, layers=[0, 1])        # doctest: +SKIP
    >>> np.array(r.normalized).shape                                           # doctest: +SKIP
    (2, n_positions)
    """
    t0 = time.perf_counter()
    one_of("mode", mode, MODES)
    one_of("method", method, ("auto", "suffix", "full"))
    hook_type = hook if hook.startswith("hook_") else f"hook_{hook}"
    if hook_type not in PATCH_HOOKS:
        raise InvalidInputError(f"residual patching hook '{hook}' is not one of "
                                f"{', '.join(h[5:] for h in PATCH_HOOKS)}")
    runner = as_runner(runner, "patch_sweep")
    tokenizer = as_tokenizer(tokenizer, "patch_sweep", runner.weights)
    kc, kx, B, P = _check_inputs(runner, clean, corrupted, metric)
    layers = _layers(runner, layers)
    pos = list(range(P)) if positions is None else resolve_positions(tuple(positions), P, "patched").tolist()
    if not pos:
        raise InvalidInputError("no positions to patch")
    use_suffix = method == "suffix" or (method == "auto" and supported(runner, hook_type, metric))
    if method == "suffix" and not supported(runner, hook_type, metric):
        raise InvalidInputError(f"the suffix method cannot read the metric at '{metric.hook}'; use method='full'")

    before_metric, qmax = _metric_reach(runner, metric, P)
    run_cell = np.array([[before_metric(f"blocks.{l}.{hook_type}") and p <= qmax for p in pos] for l in layers])
    run_layers = sorted({layers[i] for i in range(len(layers)) if run_cell[i].any()})

    src_hooks = [f"blocks.{l}.{hook_type}" for l in run_layers]
    base_hooks = (cache_hooks(runner, run_layers[0], metric) if use_suffix and run_layers
                  else [f"blocks.{l}.hook_resid_pre" for l in run_layers])
    src_acts, base_acts, clean_vals, corrupt_vals, base_vals = _metric_runs(runner, kc, kx, mode, metric, src_hooks,
                                                                            base_hooks, batch_size)
    raw = np.repeat(base_vals[None, None, :], len(layers), 0).repeat(len(pos), 1)  # [L, p, B]
    li = {l: i for i, l in enumerate(layers)}
    n_cells = int(run_cell.sum())
    it = bar(range(len(pos)) if use_suffix else run_layers, desc="patching", unit="position" if use_suffix else "layer",
             leave=False, disable=not (n_cells > 256 if progress is None else progress))
    if use_suffix:
        src_at = {l: src_acts[f"blocks.{l}.{hook_type}"] for l in run_layers}
        chunk = max(1, (batch_size or 64) // max(1, len(run_layers)))
        with torch.inference_mode():
            for j in it:
                p = pos[j]
                ls = [l for l in run_layers if run_cell[li[l], j]]
                if not ls:
                    continue
                src_p = {l: src_at[l][:, p] for l in ls}
                for b0 in range(0, B, chunk):
                    rows = torch.arange(b0, min(B, b0 + chunk))
                    got = sweep_position(runner, base_acts, src_p, hook_type, p, ls, metric, rows)
                    for l, v in got.items():
                        raw[li[l], j, b0:b0 + len(rows)] = v
    else:
        for l in it:
            cols = [j for j in range(len(pos)) if run_cell[li[l], j]]
            cpos = torch.tensor([pos[j] for j in cols])
            src = src_acts[f"blocks.{l}.{hook_type}"]

            def patch(act, cells, b, cpos=cpos, src=src):
                pp = cpos[cells]
                act[torch.arange(len(b)), pp] = src[b, pp].to(act.dtype)

            vals = _run_cells(runner, base_acts[f"blocks.{l}.hook_resid_pre"], l, f"blocks.{l}.{hook_type}", patch,
                              len(cols), metric, batch_size)
            raw[li[l], cols] = vals
    return _finish(runner, "resid", f"blocks.{{L}}.{hook_type}", mode, layers, pos, None, metric, raw, ~run_cell,
                   clean_vals, corrupt_vals, kc, kx, tokenizer, "suffix" if use_suffix else "full", n_cells, t0)


def head_sweep(
    runner: Runner,
    clean,
    corrupted,
    metric: Metric,
    *,
    hook: str = "z",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    mode: str = "denoise",
    batch_size: int | None = None,
    tokenizer=None,
    progress: bool | None = None,
) -> PatchResult:
    """Patch one head at a time (its ``attn.hook_{hook}`` slice at ``positions``, default all).

    >>> r = head_sweep(runner, clean, corrupted, metric)          # doctest: +SKIP
    >>> r.normalized[layer][head]                                  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    one_of("mode", mode, MODES)
    if hook not in HEAD_HOOKS:
        raise InvalidInputError(f"head patching hook '{hook}' is not one of {', '.join(HEAD_HOOKS)}")
    runner = as_runner(runner, "head_sweep")
    tokenizer = as_tokenizer(tokenizer, "head_sweep", runner.weights)
    kc, kx, B, P = _check_inputs(runner, clean, corrupted, metric)
    layers = _layers(runner, layers)
    H = runner.cfg.n_heads
    heads = list(range(H)) if heads is None else sorted({int(h) for h in heads})
    for h in heads:
        if not 0 <= h < H:
            raise InvalidInputError(f"head {h} does not exist: the model has heads 0..{H - 1} per layer")
    ppos = None if positions is None else resolve_positions(tuple(positions), P, "patched")
    before_metric, qmax = _metric_reach(runner, metric, P)
    reach = ppos is None or int(ppos.min()) <= qmax
    run_layer = [before_metric(f"blocks.{l}.attn.hook_{hook}") and reach for l in layers]
    run_layers = [l for l, ok in zip(layers, run_layer) if ok]
    src_acts, base_acts, clean_vals, corrupt_vals, base_vals = _metric_runs(
        runner, kc, kx, mode, metric, [f"blocks.{l}.attn.hook_{hook}" for l in run_layers],
        [f"blocks.{l}.hook_resid_pre" for l in run_layers], batch_size)
    raw = np.repeat(base_vals[None, None, :], len(layers), 0).repeat(len(heads), 1)
    hidx = torch.tensor(heads)
    for l in bar(run_layers, desc="head patching", unit="layer", leave=False, disable=not progress):
        src = src_acts[f"blocks.{l}.attn.hook_{hook}"]

        def patch(act, cells, b, src=src):
            h = hidx[cells]
            r = torch.arange(len(b))
            if ppos is None:
                act[r, :, h] = src[b, :, h].to(act.dtype)
            else:
                for p in ppos.tolist():
                    act[r, p, h] = src[b, p, h].to(act.dtype)

        raw[layers.index(l)] = _run_cells(runner, base_acts[f"blocks.{l}.hook_resid_pre"], l,
                                          f"blocks.{l}.attn.hook_{hook}", patch, len(heads), metric, batch_size)
    skipped = np.array([[not ok] * len(heads) for ok in run_layer], dtype=bool)
    return _finish(runner, "heads", f"blocks.{{L}}.attn.hook_{hook}", mode, layers, heads, ppos, metric, raw, skipped,
                   clean_vals, corrupt_vals, kc, kx, tokenizer, "full", int((~skipped).sum()), t0)


def _str_tokens(kw: dict, tokenizer) -> list[str]:
    if tokenizer is None or "tokens" not in kw:
        return []
    t = torch.as_tensor(kw["tokens"])
    t = t[0] if t.dim() == 2 else t
    return tokenizer.to_str_tokens(t.tolist())


def _finish(runner, sweep, hook, mode, layers, cols, ppos, metric, raw_rows, skipped, clean_vals, corrupt_vals, kc, kx,
            tokenizer, method, n_cells, t0) -> PatchResult:
    raw = raw_rows.mean(-1)
    clean, corrupt = float(np.mean(clean_vals)), float(np.mean(corrupt_vals))
    norm, note = _normalise(raw, clean, corrupt)
    notes = [note] if note else []
    ct, xt = _str_tokens(kc, tokenizer), _str_tokens(kx, tokenizer)
    labels = [f"{p}" + (f" {ct[p]!r}" if ct else "") for p in cols] if sweep == "resid" else [f"H{h}" for h in cols]
    # A cell's effect is how far it moves the metric from the run patched into: the corrupted run
    # (0) when denoising, the clean one (1) when noising, where a cell that changes nothing is at 1.
    moved = np.abs(norm - (1.0 if mode == "noise" else 0.0))
    order = np.argsort(-np.nan_to_num(moved, nan=-1).ravel())[:10]
    top = []
    for k in order:
        i, j = divmod(int(k), norm.shape[1])
        if skipped[i, j]:
            continue
        top.append(PatchCell(layer=layers[i], normalized=float(norm[i, j]), raw=float(raw[i, j]),
                             **{"position" if sweep == "resid" else "head": int(cols[j])}))
    swept = {"sweep": sweep, "hook": hook, "mode": mode, "method": method, "layers": list(layers),
             "columns": [int(c) for c in cols], "positions": None if ppos is None else [int(p) for p in ppos]}
    return PatchResult(
        model=runner.weights.label, processing=tuple(runner.weights.processing),
        options={**swept, "dtype": str(runner.dtype).replace("torch.", ""),
                 "normalisation": "(patched - corrupted) / (clean - corrupted)"},
        **swept, column_labels=labels, metric=metric.describe(), clean_metric=clean, corrupted_metric=corrupt,
        raw=raw.tolist(), normalized=norm.tolist(), skipped=skipped.tolist(), top=top, n_pairs=int(raw_rows.shape[-1]),
        clean_tokens=ct, corrupted_tokens=xt, cells_run=n_cells, seconds=round(time.perf_counter() - t0, 3),
        notes=notes,
    )


def summarize(r: PatchResult) -> list[str]:
    what = "position" if r.sweep == "resid" else "head"
    lines = [f"{r.mode} patching of {r.hook} over {len(r.layers)} layers x {len(r.columns)} {what}s "
             f"({r.cells_run} cells run, {r.method} method, {r.seconds:.1f} s); metric {r.metric.name if r.metric else ''}: "
             f"clean {r.clean_metric:.4g}, corrupted {r.corrupted_metric:.4g} ({r.n_pairs} pair(s))"]
    if r.top:
        lines.append("largest normalised effects" + (" (noising: 1 = no effect)" if r.mode == "noise" else "") + ": " + ", ".join(
            f"L{t.layer} {what} {getattr(t, what)}: {t.normalized:+.3f}" for t in r.top[:5]))
    return lines + list(r.notes)
