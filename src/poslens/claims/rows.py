"""Published-vs-ours rows as results carry them, and the one decision "is this OpenAI's GPT-2 small?".

Every claims module builds its rows with :func:`row` from a :class:`~poslens.claims.Claim`
(published value, tolerance, the result field it reads, the models it applies to), and
asks :func:`is_gpt2_small` (the ``gpt2-small`` kind of :func:`~poslens.claims.model_kind`:
GPT-2 small's shape and context, no Stanford CRFM layer scaling) before comparing.

>>> from poslens.claims import Claim
>>> c = Claim("x", "A study", "fig. 1", "a share", "cumulative.2", 0.9, tolerance=0.01, applies_to="gpt2-small")
>>> row(c, 0.905, True).reproduced
True
"""

from __future__ import annotations

from typing import Any

from ..results import ClaimRow
from . import Claim, model_kind

__all__ = ["ClaimRow", "is_gpt2_small", "row"]


def is_gpt2_small(cfg, label: str = "") -> bool:
    """Whether the published GPT-2 small figures apply to this model (one decision for every study)."""
    return "gpt2-small" in model_kind(cfg, label)


def row(claim: Claim, ours: Any, reproduced: bool, note: str = "", *, what: str | None = None,
        published: Any = None) -> ClaimRow:
    """One published-vs-ours row: ``what`` (the claim's statement and its study), ``published``
    (the claim's value unless a reading of it is given), ``ours``, ``reproduced``, ``note``."""
    return ClaimRow(what=what or f"{claim.statement} ({claim.study})",
                    published=claim.published if published is None else published,
                    ours=ours, reproduced=bool(reproduced), note=note, claim=claim.id)
