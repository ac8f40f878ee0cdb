"""The model profile: a model's positional heads, decided once, with scores and thresholds.

Sections of the report that need "the duplicate-token head" or "the previous-token
heads" read them from here instead of choosing their own. The scores come from the
duplicate-head measurements (:func:`~poslens.analyses.heads.duplicate_heads`:
repeated random tokens and layer-0 attention on positional inputs alone); the attention
to the first position (attention sinks) is measured on the same repeated sequences.

>>> from poslens.analyses.heads import duplicate_heads
>>> from poslens.analyses.profile import model_profile
>>> from poslens.models import load_weights
>>> w = load_weights("tiny-attn")                                # doctest: +SKIP
>>> p = model_profile(duplicate_heads(w, n_seq=8, seq_len=64))   # doctest: +SKIP
>>> p.previous_token_heads, p.duplicate_token_heads              # doctest: +SKIP
(['0.0', '0.1'], ['1.1'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InvalidInputError
from ..results import Result

# Defaults, each a share of a head's attention (see ModelProfile.thresholds for what each reads).
THRESHOLDS: dict[str, float] = {
    "previous_token": 0.4,  # attention to the position just before, on repeated random tokens
    "duplicate_token": 0.2,  # attention to earlier copies of the current token (the dup-heads threshold)
    "induction": 0.2,  # attention to the token after an earlier copy of the current token
    "sink": 0.5,  # attention to the first position (BOS on these sequences), queries after it
}
ROLES = ("previous_token", "duplicate_token", "induction", "sink")
SCORE_FIELD = {"previous_token": "prev_token_score", "duplicate_token": "score_repeated",
               "induction": "induction_score", "sink": "first_position_score"}


@dataclass(frozen=True)
class HeadRoles:
    """One head's role scores (shares of its attention; None where not measured)."""

    layer: int
    head: int
    prev_token_score: float | None = None
    score_repeated: float | None = None  # duplicate-token
    induction_score: float | None = None
    score_text: float | None = None  # duplicate-token on natural text, when measured
    first_position_score: float | None = None  # sink
    positional_kind: str | None = None  # layer 0 on positional inputs alone: local / uniform / mixed
    span50: float | None = None
    shifted_induction_score: float | None = None  # attention two after an earlier copy (a shifted copying head)

    def score(self, role: str) -> float | None:
        return getattr(self, SCORE_FIELD[role])


@dataclass(frozen=True)
class RoleBest:
    """The strongest head of a role, whether or not it reaches the threshold."""

    head: str
    score: float
    threshold: float
    present: bool


@dataclass(frozen=True)
class MeasuredOn:
    """The sequences the profile's scores come from."""

    data: str
    n_seq: int | None = None
    seq_len: int | None = None
    seed: int | None = None
    bos_token_id: int | None = None


@dataclass(frozen=True)
class ModelProfile(Result):
    """Every head's role scores and the heads at or above each threshold.

    ``heads["L.H"]`` (:class:`HeadRoles`): ``prev_token_score``, ``score_repeated``
    (duplicate), ``induction_score``, ``first_position_score`` (sink) and, for layer 0,
    ``positional_kind`` (local / uniform / mixed on positional inputs alone) and ``span50``.
    ``best[role]`` (:class:`RoleBest`): the strongest head and its score, present or not. ``duplicate_head``: layer 0's strongest duplicate-token head
    at or above the threshold (what the duplicate-neuron sections study), or None.
    """

    kind = "model_profile"
    thresholds: dict[str, float] = field(default_factory=dict)
    measured_on: MeasuredOn | None = None
    heads: dict[str, HeadRoles] = field(default_factory=dict)
    previous_token_heads: list[str] = field(default_factory=list)
    duplicate_token_heads: list[str] = field(default_factory=list)
    induction_heads: list[str] = field(default_factory=list)
    sink_heads: list[str] = field(default_factory=list)
    positional_heads: dict[str, list[str]] = field(default_factory=dict)
    best: dict[str, RoleBest] = field(default_factory=dict)
    duplicate_head: str | None = None
    uniform_reference: dict[str, float] = field(default_factory=dict)
    token_inputs: bool = True
    notes: list[str] = field(default_factory=list)

    def heads_for(self, role: str) -> list[str]:
        return getattr(self, f"{role}_heads")


def check_thresholds(thresholds: dict[str, float]) -> dict[str, float]:
    out = dict(THRESHOLDS)
    for k, v in thresholds.items():
        if k not in THRESHOLDS:
            raise InvalidInputError(f"no profile threshold '{k}'; thresholds: {', '.join(THRESHOLDS)}")
        if not isinstance(v, (int, float)) or not 0 < float(v) <= 1:
            raise InvalidInputError(f"profile threshold {k} is a share of attention in (0, 1]; got {v!r}")
        out[k] = float(v)
    return out


def model_profile(dup: Any, first_position: torch.Tensor | None = None, thresholds: dict[str, float] | None = None,
                  ) -> ModelProfile:
    """The profile from a duplicate-heads result (a ``DupHeadsResult`` or its dict).

    ``first_position``: [layer, head] attention to position 0 on the same sequences; by
    default each head's ``first_position_score`` from the same pass as its other scores
    (absent in results from before that score existed: then no sink heads).
    ``thresholds``: overrides of :data:`THRESHOLDS`.
    """
    d = dup.to_dict() if isinstance(dup, Result) else dup
    if not isinstance(d, Mapping) or "heads" not in d:
        raise InvalidInputError(f"model_profile reads a duplicate_heads result (or its dict); got {type(dup).__name__}. "
                                "For a model: model_profile(duplicate_heads(model))")
    th = check_thresholds(thresholds or {})
    opts = d.get("options", {})
    src = d.get("heads") or {}
    token_inputs = bool(src)
    raw: dict[str, dict[str, Any]] = {}
    for k, h in src.items():
        raw[k] = {"layer": h["layer"], "head": h["head"], "prev_token_score": h.get("prev_token_score"),
                  "score_repeated": h.get("score_repeated"), "induction_score": h.get("induction_score"),
                  "score_text": h.get("score_text"), "shifted_induction_score": h.get("shifted_induction_score")}
        if first_position is not None:
            raw[k]["first_position_score"] = float(first_position[h["layer"], h["head"]])
        elif h.get("first_position_score") is not None:
            raw[k]["first_position_score"] = float(h["first_position_score"])
    pos = d.get("positional") or {}
    for k, v in (pos.get("heads") or {}).items():
        e = raw.setdefault(k, {"layer": int(k.split(".")[0]), "head": int(k.split(".")[1])})
        e["positional_kind"] = v.get("kind")
        e["span50"] = v.get("span50")
    heads = {k: HeadRoles(**v) for k, v in sorted(raw.items(), key=lambda kv: (kv[1]["layer"], kv[1]["head"]))}

    lists, best = {}, {}
    for role in ROLES:
        have = [k for k, h in heads.items() if h.score(role) is not None]
        lists[role] = sorted((k for k in have if heads[k].score(role) >= th[role]), key=lambda k: -heads[k].score(role))
        if have:
            k = max(have, key=lambda k: heads[k].score(role))
            best[role] = RoleBest(head=k, score=heads[k].score(role), threshold=th[role],
                                  present=heads[k].score(role) >= th[role])
    layer0_dups = [k for k in lists["duplicate_token"] if heads[k].layer == 0]
    positional = {kind: [k for k, h in heads.items() if h.positional_kind == kind]
                  for kind in ("local", "uniform", "mixed")} if pos else {}
    P = int(opts.get("seq_len") or 0)
    ref = {}
    if P > 1:
        # What a head with uniform causal attention would score, for reading the scores.
        ref["first_position"] = float(sum(1.0 / (q + 1) for q in range(1, P)) / (P - 1))
        ref["previous_token"] = ref["first_position"]
        ref["induction"] = 2.0 / P  # one target among ~P/2..P keys on the repeated half
    notes = []  # the duplicate-heads section keeps its own notes
    if not token_inputs:
        notes.append("token inputs unavailable (no W_E): previous-token, duplicate-token, induction and sink scores "
                     "were not measured; only layer-0 attention on positional inputs alone")
    measured_on = MeasuredOn(
        data="repeated random tokens (the second half repeats the first)" if token_inputs else
             "positional inputs alone (token embedding zero), layer 0",
        n_seq=opts.get("n_seq"), seq_len=opts.get("seq_len"), seed=opts.get("seed"),
        bos_token_id=opts.get("bos_token_id"))
    return ModelProfile(
        model=d.get("model", ""), processing=tuple(d.get("processing") or ()), options={"thresholds": th},
        thresholds=th, measured_on=measured_on, heads=heads, **{f"{role}_heads": lists[role] for role in ROLES},
        positional_heads=positional, best=best,
        duplicate_head=layer0_dups[0] if layer0_dups else None, uniform_reference=ref, token_inputs=token_inputs,
        notes=notes,
    )


def summarize(p: ModelProfile) -> list[str]:
    lines = []
    for role in ROLES:
        b = p.best.get(role)
        name = role.replace("_", "-") + " head" if role != "sink" else "first-position (BOS) head"
        if b is None:
            lines.append(f"{name}: not measured here")
            continue
        found = p.heads_for(role)
        if found:
            lines.append(f"{name}s (score ≥ {p.thresholds[role]}): " + ", ".join(
                f"{k} {p.heads[k].score(role):.3f}" for k in found[:6]) + (" ..." if len(found) > 6 else ""))
        else:
            lines.append(f"no {name}: the strongest, head {b.head}, scores {b.score:.3f} < {p.thresholds[role]}")
    if p.positional_heads:
        lines.append("layer 0 on positional inputs alone: local " + (", ".join(p.positional_heads["local"]) or "none")
                     + "; nearly uniform " + (", ".join(p.positional_heads["uniform"]) or "none"))
    lines.append("duplicate-token head studied by later sections: " + (p.duplicate_head or "none (none in layer 0)"))
    return lines + p.notes
