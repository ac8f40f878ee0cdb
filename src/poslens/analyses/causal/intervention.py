"""Ablations as plain data: zero, mean and resample ablation of heads, neurons and directions.

An :class:`Intervention` says *what* is done (kind, target, hook, indices or basis,
positions, reference dataset, seed); nothing in it is a tensor or a function, so a result
can record it and a reader can redo it. :mod:`.run` compiles a list of them into editing
functions for :meth:`Runner.run` and runs them (:func:`~.run.run_with`, :func:`~.run.run_variants`).

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
reference activations are those of the unablated model.

>>> ablate_head(0, [1, 5], kind="mean").name
'mean-ablate head 0.1,0.5'
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner
from ...options import one_of

KINDS = ("zero", "mean", "resample", "patch")
TARGETS = ("head", "neuron", "direction")
HEAD_HOOKS = ("attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_result")
NEURON_HOOKS = ("mlp.hook_post", "mlp.hook_pre")
INPUT = "input"  # the reference name meaning "the batch being run"

_D_MODEL_SUFFIXES = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "ln1.hook_normalized", "ln2.hook_normalized")


def d_model_hooks(runner: Runner) -> list[str]:
    """Hooks whose last axis is ``d_model`` (where a direction can be ablated)."""
    return [n for n in runner.hook_names()
            if n in ("hook_embed", "hook_pos_embed", "ln_final.hook_normalized") or n.endswith(_D_MODEL_SUFFIXES)]


@dataclass(frozen=True)
class InterventionRecord:
    """What an :class:`Intervention` did, as a result records it: its fields, its readable ``name``,
    and for a direction the ``basis`` (None with ``full=False``), its shape and sha256."""

    kind: str
    target: str
    hook: str
    index: list[int]
    basis: list[list[float]] | None
    positions: list[int] | None
    reference: str
    mean_over: str
    gain: float
    seed: int
    label: str
    source: str
    name: str
    basis_shape: list[int] | None = None
    basis_sha256: str | None = None

    def intervention(self) -> Intervention:
        """The :class:`Intervention` again, to redo it (a compact record without its basis cannot be redone)."""
        if self.basis is None:
            raise InvalidInputError(f"{self.name}: recorded without its basis (sha256 {self.basis_sha256}); "
                                    "it cannot be redone from this record")
        d = {k: getattr(self, k) for k in Intervention.__dataclass_fields__}
        return Intervention(**{**d, "index": tuple(self.index), "basis": tuple(tuple(r) for r in self.basis),
                               "positions": _tuple(self.positions)})


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
        if self.target in ("head", "neuron"):
            what = ",".join(f"{_layer(self.hook)}.{i}" for i in self.index)
        else:
            what = f"{len(self.basis)}-d subspace of {self.hook}"
        return f"{self.kind}-ablate {self.target} {what}"

    def describe(self, full: bool = True) -> InterventionRecord:
        """The record a result keeps; ``full=False`` replaces a direction's numbers by their sha256 (and ``source``)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["positions"] = None if self.positions is None else list(self.positions)
        d["index"] = list(self.index)
        d["basis"] = []
        if self.basis:
            b = np.asarray(self.basis, dtype=np.float64)
            d["basis_shape"] = list(b.shape)
            d["basis_sha256"] = hashlib.sha256(b.tobytes()).hexdigest()[:16]
            d["basis"] = b.tolist() if full else None
        return InterventionRecord(**d, name=self.name)


def _layer(hook: str) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else None


def _tuple(xs) -> tuple[int, ...] | None:
    if xs is None:
        return None
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
                        positions=_tuple(positions), reference=reference, mean_over=mean_over, gain=gain, seed=seed,
                        label=label)


def ablate_neuron(layer: int, neurons: int | Iterable[int], kind: str = "zero", *, hook: str = "post",
                  positions: Iterable[int] | None = None, reference: str = INPUT, mean_over: str = "sequences",
                  gain: float = 1.0, seed: int = 0, label: str = "") -> Intervention:
    """Ablate MLP neurons at ``blocks.{layer}.mlp.hook_{hook}``.

    >>> ablate_neuron(0, 1168, "resample").index
    (1168,)
    """
    return Intervention(kind, "neuron", f"blocks.{layer}.mlp.hook_{hook}", _tuple(neurons),
                        positions=_tuple(positions), reference=reference, mean_over=mean_over, gain=gain, seed=seed,
                        label=label)


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
                        positions=_tuple(positions), reference=reference, mean_over=mean_over, gain=gain, seed=seed,
                        label=label, source=source)


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


def validate(iv: Intervention, runner: Runner, references: Mapping[str, Any] | None = None) -> None:
    """Raise a PoslensError saying what is wrong with ``iv`` for this model, if anything."""
    cfg = runner.cfg
    one_of("kind", iv.kind, KINDS)
    one_of("target", iv.target, TARGETS)
    one_of("mean_over", iv.mean_over, ("sequences", "all"))
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
    for p in positions:
        if not -P <= p < P:
            raise InvalidInputError(f"position {p} is {what} but the sequence has {P} positions (0..{P - 1}, or -1..-{P})")
    return torch.tensor(sorted({p % P for p in positions}), dtype=torch.long)
