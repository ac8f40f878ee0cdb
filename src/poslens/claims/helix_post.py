"""Published figures of the post "GPT-2's positional embedding matrix is a helix" (GPT-2 small).

:func:`helix_rows` gives every published-vs-ours row a helix result carries: this post's,
then those of the slides "Dissecting the Frog" (:mod:`.dissecting_the_frog`) and of the
twisted-pair post (:mod:`.twisted_pair_post`) that read ``W_pos``. Each figure is recomputed
under the study's own reading (positions 1..1023, centred) whatever options the caller
chose, so a row means the same thing every time.

>>> rows = helix_rows(result.to_dict(), weights, base=10000.0)   # doctest: +SKIP
"""

from __future__ import annotations


from . import Claim
from .rows import ClaimRow, is_gpt2_small, row

STUDY = "GPT-2's positional embedding matrix is a helix"

TOP3 = Claim("helix.top3_share", STUDY, "main text ('90%'; 'the 9% that isn't in one of those three dimensions')",
             "share of W_pos variance in 3 principal components, positions 1-1023, centred", "cumulative.2",
             0.905, tolerance=0.01, applies_to="gpt2-small")
TRUNCATED = Claim("helix.truncation_gain", STUDY, "main text", "dropping the first 100 positions raises the "
                  "3-component share substantially", "truncations.late.cumulative.2 - cumulative.2", 0.02, relation="above",
                  applies_to="gpt2-small")
ENDS = Claim("helix.end_outliers", STUDY, "main text", "position 0 and the last position stand apart from the rest",
             "outliers.flagged", 2, relation="approx", applies_to="gpt2-small")
TOKENS_AWAY = Claim("helix.tokens_away", STUDY, "comments ('concentrated away')", "token embeddings lie mostly "
                    "outside W_pos's top-3 subspace", "token_position.subspace_share - token_position.chance", 0.0,
                    relation="below",
                    applies_to="gpt2-small")
CLAIMS = (TOP3, TRUNCATED, ENDS, TOKENS_AWAY)


def helix_rows(r: dict, w, base: float) -> list[ClaimRow]:
    """Rows for a helix result ``r`` (its dict) of weights ``w``; none unless the model is GPT-2 small."""
    if not is_gpt2_small(w.cfg, w.label):
        return []
    from ..analyses.helix.pca import variance_spectrum
    from . import dissecting_the_frog, twisted_pair_post

    W = w.W_pos.detach().double().cpu().numpy()
    n = len(W)
    o = r["options"]
    default_main = o["start"] == 1 and o["stop"] == n and o["center"] and len(r["cumulative"]) >= 3

    def share3(lo: int) -> float:
        if default_main and lo == 1:
            return float(r["cumulative"][2])
        if default_main and lo == o["truncate_at"] and "late" in r["truncations"]:
            return float(r["truncations"]["late"]["cumulative"][2])
        return float(variance_spectrum(W[lo:])[:3].sum())

    s1, s100 = share3(1), share3(100)
    out = [
        row(TOP3, round(s1, 4), abs(s1 - TOP3.published) <= TOP3.tolerance,
            published="about 0.90-0.91 ('90%'; 'the 9% ... that isn't in one of those three dimensions')"),
        row(TRUNCATED, f"{s1:.4f} -> {s100:.4f} (positions 100-1023)", s100 - s1 > TRUNCATED.published,
            published="substantially higher for the OpenAI models"),
    ]
    flagged = {f["position"] for f in r["outliers"]["flagged"]}
    iso = r["outliers"]["isolation"]
    out.append(row(ENDS, f"flagged {sorted(flagged)} (isolation of 0: {iso[0]:.1f}, of {n - 1}: {iso[-1]:.1f}; "
                         f"threshold {o['outlier_threshold']:g})", {0, n - 1} <= flagged,
                   published="positions 0 and 1023 are outliers"))
    out += dissecting_the_frog.helix_rows(r, W, base)
    if r["token_position"] is not None:
        tp = r["token_position"]
        out.append(row(TOKENS_AWAY, f"{tp['subspace_share']:.4f} of W_E's variance inside (chance {tp['chance']:.4f})",
                       tp["subspace_share"] < tp["chance"], published="concentrated away"))
    out += twisted_pair_post.helix_rows(r)
    return out
