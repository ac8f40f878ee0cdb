"""Running interventions: :func:`compile_interventions` turns each one into an op that edits its
hook's activation, running each reference dataset once first (clean, read-only hooks that
keep only the ablated slice, or its running sum for means); :func:`run_with` runs one set
and :func:`run_variants` many, as copies of the input (variant v: rows ``v*B .. (v+1)*B``)
in one batched pass. Ops on one hook apply in list order.

>>> iv = ablate_head(0, [1, 5], kind="mean")                                  # doctest: +SKIP
>>> acts = run_with(runner, tokens, [iv], hooks=["blocks.0.mlp.hook_post"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Activations, HookContext, Runner
from .intervention import INPUT, Intervention, orthonormal_basis, resolve_positions, validate
from ..reach import as_runner
from .metrics import Metric, MetricStore


def as_run_kwargs(inputs) -> dict:
    """Token ids ([batch, pos] or [pos]) or a dict of :meth:`Runner.run` input keywords."""
    if isinstance(inputs, Mapping):
        kw = dict(inputs)
        if not any(k in kw for k in ("tokens", "embed", "resid")):
            raise InvalidInputError("an input dict needs one of tokens=, embed= or resid=")
        return kw
    t = torch.as_tensor(inputs)
    if t.dim() == 1:
        t = t[None]
    return {"tokens": t}


def input_shape(kw: dict) -> tuple[int, int]:
    x = torch.as_tensor(kw.get("tokens", kw.get("embed", kw.get("resid"))))
    tokens = x.dim() in (1, 2) and not x.is_floating_point()  # tokens [pos] or [batch, pos]; vectors one more axis
    return (1, x.shape[0]) if x.dim() == (1 if tokens else 2) else (x.shape[0], x.shape[1])


def repeat_input(kw: dict, times: int) -> dict:
    """The input repeated ``times`` along the batch (copy v = rows v*B .. (v+1)*B)."""
    out = dict(kw)
    for k in ("tokens", "embed", "resid"):
        if k in out and out[k] is not None:
            x = torch.as_tensor(out[k])
            if (k == "tokens" and x.dim() == 1) or (k != "tokens" and x.dim() == 2):
                x = x[None]
            out[k] = x.repeat(times, *([1] * (x.dim() - 1)))
    return out


@dataclass
class _Op:
    """One intervention ready to apply to rows ``rows`` of the run (global row indices)."""

    iv: Intervention
    rows: tuple[int, int] | None
    n_base: int
    basis: torch.Tensor | None = None  # [k, d] orthonormal, float64
    mean: torch.Tensor | None = None  # [P_ref, ...] or [...] (mean_over='all')
    pool: torch.Tensor | None = None  # [N_ref, P_ref, ...] resample values
    draw: torch.Tensor | None = None  # [n_base] reference row per base row
    _pos_cache: dict = field(default_factory=dict)

    # Heads ([batch, pos, head, d_head]) and neurons ([batch, pos, neuron]) both sit on axis 2.
    def extract(self, x: torch.Tensor) -> torch.Tensor:
        if self.iv.target != "direction":
            return x[:, :, list(self.iv.index)]
        return x @ self.basis.to(x.dtype).T

    def insert(self, x: torch.Tensor, cur: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        if self.iv.target != "direction":
            x[:, :, list(self.iv.index)] = new
            return x
        return x + (new - cur) @ self.basis.to(x.dtype)

    def positions(self, P: int) -> torch.Tensor | None:
        if P not in self._pos_cache:
            self._pos_cache[P] = resolve_positions(self.iv.positions, P)
        return self._pos_cache[P]

    def apply(self, act: torch.Tensor, sl: slice) -> torch.Tensor:
        lo, hi = sl.start, sl.stop
        r0, r1 = self.rows if self.rows is not None else (0, hi)  # global rows: draws follow the row, not the chunk
        a, b = max(lo, r0), min(hi, r1)
        if a >= b:
            return act
        P = act.shape[1]
        pos = self.positions(P)
        pidx = slice(None) if pos is None else pos.to(act.device)
        x = act[a - lo:b - lo][:, pidx].clone()  # never write into the caller's tensor (W_pos is an expanded view)
        cur = self.extract(x)
        base = (torch.arange(a, b) - r0) % self.n_base
        kind = self.iv.kind
        if kind == "zero":
            rep = torch.zeros_like(cur)
        elif kind == "mean":
            m = self.mean
            if self.iv.mean_over == "sequences":
                m = m[: P] if pos is None else m[pos]
            rep = m.to(cur.device, cur.dtype).expand_as(cur)
        else:  # resample / patch: another (or the aligned) reference row, same positions
            ref = self.pool[self.draw[base]]  # [n, P_ref, ...]
            ref = ref[:, :P] if pos is None else ref[:, pos]
            rep = ref.to(cur.device, cur.dtype)
        new = cur + self.iv.gain * (rep - cur) if self.iv.gain != 1.0 else rep
        out = act.clone()
        out[a - lo:b - lo, pidx] = self.insert(x, cur, new)
        return out


def compile_interventions(
    runner: Runner,
    variants: Sequence[Sequence[Intervention]],
    inputs,
    references: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    n_base: int | None = None,
) -> list[_Op]:
    """Ops for ``variants`` (variant v acting on rows ``v*B .. (v+1)*B`` of the repeated input).

    One clean forward pass per reference dataset gathers every mean and resample pool;
    with a single variant the ops act on every row.
    """
    references = dict(references or {})
    base_kw = as_run_kwargs(inputs)
    B, P = input_shape(base_kw)
    n_base = n_base or B
    ops: list[_Op] = []
    single = len(variants) == 1
    for v, ivs in enumerate(variants):
        for iv in ivs:
            validate(iv, runner, references)
            op = _Op(iv, None if single else (v * n_base, (v + 1) * n_base), n_base)
            if iv.target == "direction":
                op.basis = orthonormal_basis(torch.tensor(iv.basis, dtype=torch.float64), f"the direction of '{iv.name}'")
            resolve_positions(iv.positions, P)
            ops.append(op)
    # Group reference reads: one pass per reference dataset, one reader per hook.
    by_ref: dict[str, list[_Op]] = {}
    for op in ops:
        if op.iv.kind != "zero":
            by_ref.setdefault(op.iv.reference, []).append(op)
    for name, rops in by_ref.items():
        kw = base_kw if name == INPUT else as_run_kwargs(references[name])
        _gather_reference(runner, name, kw, rops, P, batch_size)
    return ops


def _key(op: _Op) -> tuple:
    iv = op.iv
    b = None if op.basis is None else hashlib.sha256(op.basis.numpy().tobytes()).hexdigest()
    return (iv.kind, iv.target, iv.hook, iv.index, b, iv.mean_over)


def _gather_reference(runner: Runner, name: str, kw: dict, ops: list[_Op], P_run: int, batch_size: int | None) -> None:
    N, P_ref = input_shape(kw)
    if N == 0 or P_ref == 0:
        raise InvalidInputError(f"reference dataset '{name}' is empty; give at least one sequence")
    for op in ops:
        pos = op.positions(P_run)
        need = P_run if pos is None else int(pos.max()) + 1  # positions the reference must reach
        if (op.iv.kind in ("resample", "patch") or op.iv.mean_over == "sequences") and P_ref < need:
            raise InvalidInputError(
                f"reference dataset '{name}' has {P_ref} positions but '{op.iv.name}' needs position {need - 1}; "
                "positions must align: give a reference at least as long as the input"
                + (" or use mean_over='all'" if op.iv.kind == "mean" else ""))
        if op.iv.kind == "patch":
            if N != op.n_base:
                raise InvalidInputError(f"'{op.iv.name}' patches from reference '{name}' row by row, but it has {N} "
                                        f"sequences for {op.n_base} input sequences; give one per input sequence")
            op.draw = torch.arange(op.n_base)
        if op.iv.kind == "resample":
            if name == INPUT and N < 2:
                raise InvalidInputError("resample ablation against the input itself needs at least two sequences "
                                        "(each is resampled from another); give more sequences or a reference dataset")
            g = torch.Generator().manual_seed(int(op.iv.seed))
            if name == INPUT:
                # Another row, never the row itself: shift by 1..N-1.
                op.draw = (torch.arange(op.n_base) % N + 1 + torch.randint(0, N - 1, (op.n_base,), generator=g)) % N
            else:
                op.draw = torch.randint(0, N, (op.n_base,), generator=g)
    # Unique reads (variants often repeat the same target): key -> accumulator.
    uniq: dict[tuple, list[_Op]] = {}
    for op in ops:
        uniq.setdefault(_key(op), []).append(op)
    sums: dict[tuple, torch.Tensor] = {}
    pools: dict[tuple, torch.Tensor] = {}
    by_hook: dict[str, list[tuple]] = {}
    for k, group in uniq.items():
        by_hook.setdefault(group[0].iv.hook, []).append(k)

    def reader(act: torch.Tensor, hook: HookContext) -> None:
        for k in by_hook[hook.name]:
            op = uniq[k][0]
            vals = op.extract(act).double().cpu()  # [b, P, ...]
            if op.iv.kind == "mean":
                s = vals.sum(0) if op.iv.mean_over == "sequences" else vals.sum((0, 1))
                sums[k] = s if k not in sums else sums[k] + s
            else:
                if k not in pools:
                    pools[k] = torch.empty((N, *vals.shape[1:]), dtype=torch.float64)
                pools[k][hook.batch] = vals

    runner.run(**kw, edits={h: reader for h in by_hook}, batch_size=batch_size or 32)
    for k, group in uniq.items():
        for op in group:
            if op.iv.kind == "mean":
                op.mean = sums[k] / (N if op.iv.mean_over == "sequences" else N * P_ref)
            else:
                op.pool = pools[k]


Reader = Callable[[torch.Tensor, HookContext], None]


def build_edits(ops: Sequence[_Op], readers: Mapping[str, Sequence[Reader]] | None = None) -> dict[str, Callable]:
    """One edit per hook: the hook's ops in order, then read-only readers see the result."""
    by_hook: dict[str, list[_Op]] = {}
    for op in ops:
        by_hook.setdefault(op.iv.hook, []).append(op)
    readers = {k: list(v) for k, v in (readers or {}).items()}
    edits: dict[str, Callable] = {}
    for hook in dict.fromkeys([*by_hook, *readers]):
        hops, hreads = by_hook.get(hook, []), readers.get(hook, [])

        def fn(act, ctx, hops=hops, hreads=hreads):
            out = act
            for op in hops:
                out = op.apply(out, ctx.batch)
            for r in hreads:
                r(out, ctx)
            return out if hops else None

        edits[hook] = fn
    return edits


def run_with(
    runner: Runner,
    inputs,
    interventions: Sequence[Intervention] = (),
    *,
    references: Mapping[str, Any] | None = None,
    hooks: Iterable[str] = (),
    logits: bool = False,
    batch_size: int | None = None,
) -> Activations:
    """Run ``inputs`` with ``interventions`` applied (in order) and return the requested hooks.

    >>> iv = ablate_neuron(0, 3)                                                   # doctest: +SKIP
    >>> acts = run_with(runner, tokens, [iv], hooks=["blocks.0.mlp.hook_post"])    # doctest: +SKIP
    >>> acts["blocks.0.mlp.hook_post"][..., 3].abs().max()                           # doctest: +SKIP
    tensor(0.)
    """
    runner, kw = as_runner(runner, "run_with"), as_run_kwargs(inputs)
    ops = compile_interventions(runner, [list(interventions)], kw, references, batch_size)
    return runner.run(**kw, hooks=hooks, edits=build_edits(ops), logits=logits, batch_size=batch_size)


def run_variants(
    runner: Runner,
    inputs,
    variants: Sequence[Sequence[Intervention]],
    readers: Mapping[str, Sequence[Reader]],
    *,
    references: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> int:
    """Run every variant on a copy of ``inputs`` in one batched pass; readers see each hook.

    Copy ``v`` (rows ``v*B .. (v+1)*B``, ``hook.batch`` says which are in a chunk) gets
    ``variants[v]``. Returns the number of base rows ``B``. Readers are read-only edits
    (see :mod:`poslens.analyses.causal.metrics`).
    """
    if not variants:
        raise InvalidInputError("no variants to run")
    runner, kw = as_runner(runner, "run_variants"), as_run_kwargs(inputs)
    B, _ = input_shape(kw)
    ops = compile_interventions(runner, [list(v) for v in variants], kw, references, batch_size, n_base=B)
    big = repeat_input(kw, len(variants))
    runner.run(**big, edits=build_edits(ops, readers), batch_size=batch_size or max(B, 32), progress=bool(progress))
    return B


def measure_variants(runner: Runner, inputs, variants: Sequence[Sequence[Intervention]], metrics: Sequence[Metric], *,
                     readers: Mapping[str, Sequence[Reader]] | None = None, references: Mapping[str, Any] | None = None,
                     batch_size: int | None = None) -> dict[str, np.ndarray]:
    """:func:`run_variants` reading ``metrics`` (then ``readers``): ``{metric name: [variant, base row, *shape]}``.

    >>> vals = measure_variants(runner, tokens, [[], [iv]], [next_token_loss(tokens)])   # doctest: +SKIP
    """
    runner, (B, _) = as_runner(runner, "measure_variants"), input_shape(as_run_kwargs(inputs))
    store = MetricStore(metrics, len(variants) * B, B)
    every = store.readers()
    for hook, fns in (readers or {}).items():
        every.setdefault(hook, []).extend(fns)
    run_variants(runner, inputs, variants, every, references=references, batch_size=batch_size)
    return store.by_variant(len(variants))
