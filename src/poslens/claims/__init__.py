"""Published figures, kept apart from the analyses that measure them.

One module per source study. Each :class:`Claim` names the published value, how ours is
compared with it (within a tolerance, above or below it), the result field it reads (a
dotted path into ``result.to_dict()``, list items by index or by their ``name``/``head``
key) and which models it applies to. :func:`check` turns claims and a result into
:class:`ClaimCheck` rows ("published vs ours"); analyses themselves return measurements only.

>>> from poslens.claims import sinks_gu2024                                   # doctest: +SKIP
>>> [c.holds for c in check(sinks_gu2024.CLAIMS, result, kinds=model_kind(w.cfg, w.label))]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..results import to_jsonable

RELATIONS = ("approx", "above", "below")
# Which models a claim speaks about; decided once per model by :func:`model_kind`.
APPLIES = ("any", "gpt2", "gpt2-small", "rotary")


@dataclass(frozen=True)
class Claim:
    """One published figure. ``relation``: ``approx`` (|ours - published| <= tolerance),
    ``above`` (ours > published), ``below`` (ours < published)."""

    id: str
    study: str
    where: str  # section / table / figure of the study
    statement: str
    field: str
    published: float
    relation: str = "approx"
    tolerance: float = 0.0
    applies_to: str = "any"

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"claim {self.id}: relation must be one of {RELATIONS}")
        if self.applies_to not in APPLIES:
            raise ValueError(f"claim {self.id}: applies_to must be one of {APPLIES}")


@dataclass(frozen=True)
class ClaimCheck:
    claim: Claim
    ours: float | None
    holds: bool | None  # None: the result has no value for the field (not measured here)
    note: str = ""


def model_kind(cfg, label: str = "") -> tuple[str, ...]:
    """The ``applies_to`` classes a model belongs to: always ``any``; ``gpt2`` for the learned-position
    GPT-2 architecture; ``gpt2-small`` for OpenAI's GPT-2 small (its shape, no Stanford CRFM layer
    scaling); ``rotary`` for rotary models."""
    kinds = ["any"]
    positional = getattr(cfg, "positional", "learned")
    family = getattr(cfg, "family", "gpt2")
    if positional == "rotary":
        kinds.append("rotary")
    elif family == "gpt2":
        kinds.append("gpt2")
        from ..models.registry import _BY_NAME

        info = _BY_NAME.get(str(label).split("@")[0].lower())
        stanford = info is not None and info.family.startswith("stanford")
        if ((cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.n_ctx) == (12, 12, 768, 1024)
                and not cfg.scale_attn_by_inverse_layer_idx and not stanford):
            kinds.append("gpt2-small")
    return tuple(kinds)


def read_field(d: Any, path: str) -> Any:
    """``read_field(result_dict, "runs.random_tokens.sink_share")``: dict keys, list indices, or the
    list item whose ``name`` / ``head`` / ``inputs`` equals the step. ``"a - b"`` reads the difference
    of two numeric fields (a claim about a gain or an excess over chance), None if either is missing."""
    if " - " in path:
        a, b = (read_field(d, p.strip()) for p in path.split(" - ", 1))
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        return a - b if ok else None
    for step in path.split("."):
        if isinstance(d, dict):
            if step not in d:
                return None
            d = d[step]
        elif isinstance(d, list):
            if step.lstrip("-").isdigit():
                i = int(step)
                d = d[i] if -len(d) <= i < len(d) else None
            else:
                d = next((x for x in d if isinstance(x, dict) and step in (x.get("name"), x.get("head"), x.get("inputs"))), None)
        else:
            return None
        if d is None:
            return None
    return d


def check(claims: Iterable[Claim], result, kinds: Iterable[str] = ("any",)) -> tuple[ClaimCheck, ...]:
    """Each claim that applies to a model of ``kinds`` (see :func:`model_kind`) against ``result``."""
    d = result if isinstance(result, dict) else to_jsonable(result)
    kinds = set(kinds)
    out = []
    for c in claims:
        if c.applies_to not in kinds:
            continue
        v = read_field(d, c.field)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            out.append(ClaimCheck(c, None, None, "not measured on this model / with these inputs"))
            continue
        v = float(v)
        holds = {"approx": abs(v - c.published) <= c.tolerance, "above": v > c.published, "below": v < c.published}
        out.append(ClaimCheck(c, v, holds[c.relation]))
    return tuple(out)


def lines(checks: Iterable[ClaimCheck]) -> list[str]:
    """One line per check, for summaries: 'published vs ours'."""
    sym = {"approx": "≈", "above": ">", "below": "<"}
    out = []
    for k in checks:
        c = k.claim
        target = f"{sym[c.relation]} {c.published:g}" + (f" ± {c.tolerance:g}" if c.relation == "approx" else "")
        verdict = "not measured" if k.holds is None else ("holds" if k.holds else "does not hold")
        ours = "—" if k.ours is None else f"{k.ours:.4g}"
        out.append(f"{c.study} ({c.where}): {c.statement}: published {target}, ours {ours}: {verdict}")
    return out
