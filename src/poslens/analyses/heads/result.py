"""The duplicate-heads result (scores per head, decay profiles, token classes, positional spread)
and its lines for the terminal and the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...results import ClaimRow, Result
from .measure import DecayProfile, PositionalSpread, TokenClasses


@dataclass(frozen=True)
class HeadScores:
    """One head's attention shares on the duplicate-heads inputs (None where not measured).

    ``score`` is the one heads are ranked by (``score_repeated`` or ``score_text``, by the
    options' ``rank_by``); ``*_seqmean`` average per sequence instead of over every query.
    """

    layer: int
    head: int
    score: float | None
    score_repeated: float
    score_repeated_seqmean: float
    score_text: float | None
    score_text_seqmean: float | None
    prev_token_score: float
    induction_score: float
    first_position_score: float
    rank: int = 0
    is_duplicate: bool = False
    # attention two after the earlier copy: a copying head that reads there what a previous-token head
    # wrote (the token after the copy) instead of reading that token itself
    shifted_induction_score: float | None = None


@dataclass(frozen=True)
class ScoredSequences:
    """The sequences heads were scored on: how many, how long, how many queries had an earlier copy of
    their token (``empty_reason`` says why scores are undefined when none had)."""

    n_seq: int
    seq_len: int
    n_dup_queries: int
    empty_reason: str | None = None


@dataclass(frozen=True)
class ScoredData:
    repeated: ScoredSequences  # a random half repeated
    text: ScoredSequences | None = None  # corpus or text windows, when given


@dataclass(frozen=True)
class DupHeadsResult(Result):
    """Duplicate-token head scores, decay profiles, token classes and positional spread.

    ``heads`` maps ``"L.H"`` to that head's :class:`HeadScores`, in rank order (by ``rank_by``).
    """

    kind = "dup_heads"
    heads: dict[str, HeadScores] = field(default_factory=dict)
    ranking: list[str] = field(default_factory=list)
    duplicate_heads: list[str] = field(default_factory=list)
    profiles: dict[str, DecayProfile] = field(default_factory=dict)
    token_classes: TokenClasses | None = None
    positional: PositionalSpread | None = None
    data: ScoredData | None = None
    notes: list[str] = field(default_factory=list)
    checks: list[ClaimRow] = field(default_factory=list)


def summarize(result: DupHeadsResult) -> list[str]:
    """Short lines for the terminal and the report page."""
    lines = []
    if result.ranking:
        top = result.ranking[:3]
        lines.append("top duplicate-token scores (repeated random tokens): " + ", ".join(
            f"{k} {result.heads[k].score_repeated:.3f}" for k in top))
        if result.duplicate_heads:
            lines.append(f"{len(result.duplicate_heads)} head(s) at or above {result.options.get('threshold')}: "
                         + ", ".join(result.duplicate_heads))
        tx = [k for k in result.ranking if result.heads[k].score_text is not None]
        if tx:
            best = max(tx, key=lambda k: result.heads[k].score_text)
            lines.append(f"on natural text the strongest is {best} ({result.heads[best].score_text:.3f} of attention "
                         "at repeated tokens)")
        pv = max(result.heads, key=lambda k: result.heads[k].prev_token_score)
        lines.append(f"strongest previous-token head {pv} ({result.heads[pv].prev_token_score:.3f})")
        iv = max(result.heads, key=lambda k: result.heads[k].induction_score)
        lines.append(f"strongest induction head {iv} ({result.heads[iv].induction_score:.3f} of attention to "
                     "the token after the earlier copy)")
        sh = [k for k in result.heads if result.heads[k].shifted_induction_score is not None]
        sv = max(sh, key=lambda k: result.heads[k].shifted_induction_score) if sh else None
        if sv is not None and result.heads[sv].shifted_induction_score >= max(0.3, result.heads[iv].induction_score):
            lines.append(f"head {sv} attends two past the earlier copy ({result.heads[sv].shifted_induction_score:.3f}): "
                         "a shifted copying head, which reads there what a previous-token head wrote (the token "
                         "after the copy) — an induction circuit the induction score does not count")
    for k, p in result.profiles.items():
        if p.half_distance is not None:
            how = (f"attention among copies doubles every {-math.log(2) / p.rate:.1f} tokens of distance (the earliest "
                   "copy is favoured)" if p.verdict == "growing"
                   else "attention among copies does not fall with distance" if math.isinf(p.half_distance)
                   else f"attention among copies halves every {p.half_distance:.1f} tokens")
            wq, mf = p.within_query, p.mean_fit
            if wq.rate is not None:
                # The figure draws the mean-profile fit, which can differ many-fold: name both.
                fit = f"rate {p.rate:.4f}/token within queries, R² {wq.r2:.2f}" + (
                    f"; the figure's fit to the mean attention by distance: {mf.rate:.4f}/token"
                    if mf.rate is not None else "")
            else:
                fit = f"rate {p.rate:.4f}/token, fitted to the mean attention by distance" + (
                    f", R² {mf.r2:.2f}" if mf.r2 is not None else "")
            lines.append(f"{k}: {p.verdict}, {how} ({fit})")
    for k, v in (result.token_classes.heads if result.token_classes else {}).items():
        if v.groups:
            lines.append(f"{k} treats as one group: " + "; ".join(" ".join(repr(t) for t in g) for g in v.groups))
    if result.positional:
        p = result.positional
        lines.append(f"positional inputs alone ({p.seq_len} positions): half the attention within the last "
                     f"{p.local_window} positions for {', '.join(p.local) or 'none'}; nearly uniform "
                     f"{', '.join(p.uniform) or 'none'}; mixed {', '.join(p.mixed) or 'none'}")
    for c in result.checks:
        lines.append(f"the study: {c.what}: {'reproduced' if c.reproduced else 'NOT reproduced'} (ours: {c.ours})")
    lines += result.notes
    return lines
