"""Ablations as plain data: zero, mean and resample ablation of heads, neurons and directions.

An :class:`Intervention` says *what* is done (kind, target, hook, indices or basis,
positions, reference dataset, seed); nothing in it is a tensor or a function, so a result
can record it and a reader can redo it. :func:`compile_interventions` turns a list of them
into editing functions for :meth:`Runner.run` (``edits={hook: fn}``): it runs each
reference dataset once (clean, read-only hooks that keep only the ablated slice, or its
running sum for means) and then every intervention on one hook applies in list order.

Targets:

* ``head``: the slice of one or more heads in ``blocks.L.attn.hook_z`` (also ``hook_q``,
  ``hook_k``, ``hook_v``, ``hook_result``; the head axis is 2).
* ``neuron``: columns of ``blocks.L.mlp.hook_post`` (or ``hook_pre``).
* ``direction``: a direction or subspace (rows of ``basis``, orthonormalised) of any hook
  whose last axis is ``d_model``: ``hook_pos_embed``, ``blocks.L.hook_resid_pre`` ...

Kinds replace the target with: ``zero`` nothing (a direction is projected out), ``mean``
its mean over the reference dataset (per position by default, ``mean_over="all"`` pools
positions too), ``resample`` its value on another reference sequence at the same position,
``patch`` its value on the reference sequence of the same row (activation patching of
just this target: the reference holds one sequence per input sequence).
``gain`` scales the move: the target becomes ``x + gain * (replacement - x)``.

Interventions compose: several in one run, several on one hook applied in order; the
reference activations are those of the unablated model. To run many variants in one
forward pass per batch, pass ``rows=(start, stop)`` per variant: the input is repeated
along the batch and each copy gets its own interventions (see :func:`run_variants`).

>>> iv = ablate_head(0, [1, 5], kind="mean")                       # doctest: +SKIP
>>> acts = run_with(runner, tokens, [iv], hooks=["blocks.0.mlp.hook_post"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Activations, HookContext, Runner

KINDS = ("zero", "mean", "resample", "patch")
TARGETS = ("head", "neuron", "direction")
HEAD_HOOKS = ("attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_result")
NEURON_HOOKS = ("mlp.hook_post", "mlp.hook_pre")
INPUT = "input"  # the reference name meaning "the batch being run"

_D_MODEL_SUFFIXES = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "ln1.hook_normalized", "ln2.hook_normalized")


def d_model_hooks(runner: Runner) -> list[str]:
    """Hooks whose last axis is ``d_model`` (where a direction can be ablated)."""
    out = []
    for n in runner.hook_names():
        if n in ("hook_embed", "hook_pos_embed", "ln_final.hook_normalized") or n.endswith(_D_MODEL_SUFFIXES):
            out.append(n)
    return out


@dataclass(frozen=True)
class Intervention:
    """One ablation, described by plain data (see the module docstring for the fields' meaning).

    ``positions`` are sequence positions (negative counts from the end; None = all);
    ``reference`` names a dataset given at run time (``"input"``: the batch being run);
    ``source`` says where a direction came from (kept in results).
    """

    kind: str = "zero"
    target: str = "head"
    hook: str = ""
    index: tuple[int, ...] = ()
    basis: tuple[tuple[float, ...], ...] = ()
    positions: tuple[int, ...] | None = None
    reference: str = INPUT
    mean_over: str = "sequences"
    gain: float = 1.0
    seed: int = 0
    label: str = ""
    source: str = ""

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.target == "head":
            l = _layer(self.hook)
            what = ",".join(f"{l}.{h}" for h in self.index)
        elif self.target == "neuron":
            l = _layer(self.hook)
            what = ",".join(f"{l}.{n}" for n in self.index)
        else:
            what = f"{len(self.basis)}-d subspace of {self.hook}"
        return f"{self.kind}-ablate {self.target} {what}"

    def describe(self, full: bool = True) -> dict[str, Any]:
        """A JSON-ready dict; ``full=False`` replaces a direction's numbers by their sha256 (and ``source``)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["positions"] = None if self.positions is None else list(self.positions)
        d["index"] = list(self.index)
        d["name"] = self.name
        if self.basis:
            b = np.asarray(self.basis, dtype=np.float64)
            d["basis_shape"] = list(b.shape)
            d["basis_sha256"] = hashlib.sha256(b.tobytes()).hexdigest()[:16]
            d["basis"] = b.tolist() if full else None
        return d


def _layer(hook: str) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else None


def _tuple(xs) -> tuple[int, ...]:
    if isinstance(xs, (int, np.integer)):
        return (int(xs),)
    return tuple(int(x) for x in xs)


def ablate_head(layer: int, heads: int | Iterable[int], kind: str = "zero", *, hook: str = "z",
                positions: Iterable[int] | None = None, reference: str = INPUT, mean_over: str = "sequences",
                gain: float = 1.0, seed: int = 0, label: str = "") -> Intervention:
    """Ablate heads of one layer at ``blocks.{layer}.attn.hook_{hook}``.

    >>> ablate_head(0, [1, 5], "mean").hook
    'blocks.0.attn.hook_z'
    """
    return Intervention(kind, "head", f"blocks.{layer}.attn.hook_{hook}", _tuple(heads),
                        positions=None if positions is None else _tuple(positions), reference=reference,
                        mean_over=mean_over, gain=gain, seed=seed, label=label)


def ablate_neuron(layer: int, neurons: int | Iterable[int], kind: str = "zero", *, hook: str = "post",
                  positions: Iterable[int] | None = None, reference: str = INPUT, mean_over: str = "sequences",
                  gain: float = 1.0, seed: int = 0, label: str = "") -> Intervention:
    """Ablate MLP neurons at ``blocks.{layer}.mlp.hook_{hook}``.

    >>> ablate_neuron(0, 1168, "resample").index
    (1168,)
    """
    return Intervention(kind, "neuron", f"blocks.{layer}.mlp.hook_{hook}", _tuple(neurons),
                        positions=None if positions is None else _tuple(positions), reference=reference,
                        mean_over=mean_over, gain=gain, seed=seed, label=label)


def ablate_direction(hook: str, vectors, kind: str = "zero", *, positions: Iterable[int] | None = None,
                     reference: str = INPUT, mean_over: str = "sequences", gain: float = 1.0, seed: int = 0,
                     label: str = "", source: str = "") -> Intervention:
    """Ablate the span of ``vectors`` ([d_model] or [k, d_model]) at a d_model hook.

    ``kind="zero"`` projects the subspace out; ``mean``/``resample`` replace the
    activation's coordinates in it by the reference's.

    >>> iv = ablate_direction("hook_pos_embed", torch.eye(4)[:2], source="demo")
    >>> len(iv.basis), len(iv.basis[0])
    (2, 4)
    """
    v = torch.as_tensor(np.asarray(vectors, dtype=np.float64) if not isinstance(vectors, torch.Tensor) else vectors)
    v = v.detach().to(torch.float64)
    if v.dim() == 1:
        v = v[None]
    if v.dim() != 2 or v.shape[0] == 0:
        raise InvalidInputError(f"a direction must be a vector [d_model] or a stack [k, d_model]; got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise InvalidInputError("the direction contains NaN or infinite values")
    return Intervention(kind, "direction", hook, (), tuple(tuple(float(x) for x in row) for row in v.tolist()),
                        positions=None if positions is None else _tuple(positions), reference=reference,
                        mean_over=mean_over, gain=gain, seed=seed, label=label, source=source)


def orthonormal_basis(vectors: torch.Tensor, what: str = "the direction") -> torch.Tensor:
    """Rows spanning the same space as ``vectors``, orthonormal (QR); an error if they are dependent."""
    v = torch.as_tensor(vectors, dtype=torch.float64)
    if v.dim() == 1:
        v = v[None]
    q, r = torch.linalg.qr(v.T)
    diag = r.diagonal().abs()
    if diag.numel() == 0 or diag.min() <= 1e-10 * max(1.0, float(diag.max())):
        raise InvalidInputError(f"{what} has a zero or linearly dependent vector; give independent, non-zero vectors")
    return q.T.contiguous()


# ---------------------------------------------------------------------------- validation


def validate(iv: Intervention, runner: Runner, references: Mapping[str, Any] | None = None) -> None:
    """Raise a PoslensError saying what is wrong with ``iv`` for this model, if anything."""
    cfg = runner.cfg
    if iv.kind not in KINDS:
        raise InvalidInputError(f"unknown ablation kind '{iv.kind}'; use one of {', '.join(KINDS)}")
    if iv.target not in TARGETS:
        raise InvalidInputError(f"unknown ablation target '{iv.target}'; use one of {', '.join(TARGETS)}")
    if iv.mean_over not in ("sequences", "all"):
        raise InvalidInputError(f"mean_over must be 'sequences' (per position) or 'all'; got '{iv.mean_over}'")
    if not math.isfinite(iv.gain):
        raise InvalidInputError(f"gain must be a finite number; got {iv.gain}")
    runner.check_hook(iv.hook)
    tail = iv.hook.split(".", 2)[-1] if iv.hook.startswith("blocks.") else iv.hook
    if iv.target == "head":
        if tail not in HEAD_HOOKS:
            raise InvalidInputError(f"a head ablation needs an attention hook with a head axis ({', '.join(HEAD_HOOKS)}); "
                                    f"got '{iv.hook}'")
        _check_index(iv, cfg.n_heads, "head", f"{cfg.n_heads} heads per layer")
    elif iv.target == "neuron":
        if tail not in NEURON_HOOKS:
            raise InvalidInputError(f"a neuron ablation needs blocks.L.mlp.hook_post or hook_pre; got '{iv.hook}'")
        _check_index(iv, cfg.d_mlp, "neuron", f"d_mlp={cfg.d_mlp} neurons per layer")
    else:
        if iv.hook not in d_model_hooks(runner):
            raise InvalidInputError(f"a direction ablation needs a hook whose last axis is d_model (hook_pos_embed, "
                                    f"blocks.L.hook_resid_pre, ...); '{iv.hook}' is not one")
        if not iv.basis:
            raise InvalidInputError("a direction ablation needs at least one vector")
        dims = {len(b) for b in iv.basis}
        if dims != {cfg.d_model}:
            raise InvalidInputError(f"the direction has {sorted(dims)[0]} dimensions but {iv.hook} has d_model={cfg.d_model}; "
                                    "give vectors of length d_model")
        if len(iv.basis) > cfg.d_model:
            raise InvalidInputError(f"{len(iv.basis)} vectors cannot be independent in d_model={cfg.d_model}")
    if iv.kind != "zero" and references is not None and iv.reference != INPUT and iv.reference not in references:
        known = ", ".join([INPUT, *references])
        raise InvalidInputError(f"{iv.kind} ablation names reference dataset '{iv.reference}', which was not given; known: {known}")


def _check_index(iv: Intervention, n: int, what: str, have: str) -> None:
    if not iv.index:
        raise InvalidInputError(f"a {what} ablation needs at least one {what} index")
    bad = [i for i in iv.index if not 0 <= i < n]
    if bad:
        raise InvalidInputError(f"{what} {bad[0]} does not exist in {iv.hook}: the model has {have} (0..{n - 1})")
    if len(set(iv.index)) != len(iv.index):
        raise InvalidInputError(f"{what} indices repeat in {list(iv.index)}; name each once")


def resolve_positions(positions: tuple[int, ...] | None, P: int, what: str = "ablated") -> torch.Tensor | None:
    """Absolute positions (None stays None = every position); an error for out-of-range ones."""
    if positions is None:
        return None
    out = []
    for p in positions:
        if not -P <= p < P:
            raise InvalidInputError(f"position {p} is {what} but the sequence has {P} positions (0..{P - 1}, or -1..-{P})")
        out.append(p % P)
    return torch.tensor(sorted(set(out)), dtype=torch.long)


# ---------------------------------------------------------------------------- inputs


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
    x = kw.get("tokens", kw.get("embed", kw.get("resid")))
    x = torch.as_tensor(x)
    if x.dim() in (1, 2) and not x.is_floating_point():
        return (1, x.shape[0]) if x.dim() == 1 else (x.shape[0], x.shape[1])
    return (1, x.shape[0]) if x.dim() == 2 else (x.shape[0], x.shape[1])


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


# ---------------------------------------------------------------------------- compiled ops


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

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        t = self.iv.target
        if t == "head":
            return x[:, :, list(self.iv.index)]
        if t == "neuron":
            return x[..., list(self.iv.index)]
        return x @ self.basis.to(x.dtype).T

    def insert(self, x: torch.Tensor, cur: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        t = self.iv.target
        if t == "head":
            x[:, :, list(self.iv.index)] = new
            return x
        if t == "neuron":
            x[..., list(self.iv.index)] = new
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


def _needed_length(op: _Op, P: int) -> int:
    pos = op.positions(P)
    return P if pos is None else int(pos.max()) + 1


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
        need = _needed_length(op, P_run)
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
        return None

    runner.run(**kw, edits={h: reader for h in by_hook}, batch_size=batch_size or 32)
    for k, group in uniq.items():
        for op in group:
            if op.iv.kind == "mean":
                op.mean = sums[k] / (N if op.iv.mean_over == "sequences" else N * P_ref)
            else:
                op.pool = pools[k]


# ---------------------------------------------------------------------------- running


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
    >>> run_with(runner, tokens, [iv], hooks=["blocks.0.mlp.hook_post"])["blocks.0.mlp.hook_post"][..., 3]  # doctest: +SKIP
    tensor(0.)
    """
    kw = as_run_kwargs(inputs)
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
    kw = as_run_kwargs(inputs)
    B, _ = input_shape(kw)
    ops = compile_interventions(runner, [list(v) for v in variants], kw, references, batch_size, n_base=B)
    if len(variants) == 1:
        for op in ops:
            op.rows = (0, B)
    big = repeat_input(kw, len(variants))
    runner.run(**big, edits=build_edits(ops, readers), batch_size=batch_size or max(B, 32), progress=bool(progress))
    return B


def with_seed(iv: Intervention, seed: int) -> Intervention:
    return replace(iv, seed=int(seed))
