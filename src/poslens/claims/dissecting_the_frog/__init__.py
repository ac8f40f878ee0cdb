"""Published figures of the slides "Dissecting the Frog" (GPT-2 small): W_pos's principal
components against the sinusoidal encoding's, and the row norms of W_pos and W_E (here,
read by the helix result); the geometry of weights and hidden states is :mod:`.geometry`'s.

>>> rows = helix_rows(result_dict, W_pos, base=10000.0)   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .. import Claim
from ..rows import ClaimRow, row

STUDY = "Dissecting the Frog"

LEARNED_90 = Claim("frog.learned_components_90", STUDY, "positional slides", "components retaining 90% of W_pos's "
                   "variance, all 1024 positions, centred", "components_for_90", 3, applies_to="gpt2-small")
SINUSOIDAL_90 = Claim("frog.sinusoidal_components_90", STUDY, "positional slides", "components retaining 90% of the "
                      "sinusoidal encoding's variance (1024 x 768, centred)", "sinusoidal.components_for_90", 153,
                      applies_to="gpt2-small")
POS_NORMS = {k: Claim(f"frog.wpos_norm_{k}", STUDY, "positional slides", f"W_pos row norms, {k} over all 1024 "
                      "positions, raw weights", f"norms.W_pos.{k}", v, tolerance=6e-5, applies_to="gpt2-small")
             for k, v in {"mean": 3.3901, "std": 0.2620, "max": 9.8756, "min": 0.1179}.items()}
TOKEN_NORMS = {k: Claim(f"frog.wte_norm_{k}", STUDY, "positional slides", f"W_E row norms, {k} over the vocabulary, "
                        "raw weights", f"norms.W_E.{k}", v, tolerance=6e-5, applies_to="gpt2-small")
               for k, v in {"mean": 3.9585, "std": 0.4337, "max": 6.3155, "min": 2.4537}.items()}
SINUSOIDAL_NORM = Claim("frog.sinusoidal_norm", STUDY, "positional slides", "sinusoidal row norm sqrt(d_model / 2) = "
                        "sqrt(384)", "sinusoidal.norms.mean", 19.6, tolerance=0.01, applies_to="gpt2-small")
CLAIMS = (LEARNED_90, SINUSOIDAL_90, *POS_NORMS.values(), *TOKEN_NORMS.values(), SINUSOIDAL_NORM)


def helix_rows(r: dict, W: np.ndarray, base: float) -> list[ClaimRow]:
    """The slides' W_pos rows for a helix result ``r`` of GPT-2 small's ``W`` (the caller decided it is)."""
    from ...analyses.helix.pca import components_for, variance_spectrum
    from ...analyses.sinusoidal import sinusoidal_encoding

    n = len(W)
    k90 = components_for(variance_spectrum(W))
    out = [row(LEARNED_90, k90, k90 == LEARNED_90.published)]
    pe = sinusoidal_encoding(n, W.shape[1], base)
    s90 = components_for(variance_spectrum(pe))
    s90_raw = components_for(variance_spectrum(pe, center=False))
    s90_1000 = components_for(variance_spectrum(sinusoidal_encoding(n, W.shape[1], 1000.0)))
    ok = s90 == SINUSOIDAL_90.published
    out.append(row(SINUSOIDAL_90, s90, ok, "" if ok else
                   f"uncentred the same PCA needs {s90_raw}; the slides write the base as L without giving its value, "
                   f"and L = 1000 gives {s90_1000}, so we think the slides used L = 1000 rather than the paper's 10000",
                   what=f"{SINUSOIDAL_90.statement}, base {base:g} ({STUDY})"))
    st = r["norms"]["W_pos"]
    out += [row(c, round(st[k], 4), abs(st[k] - c.published) <= c.tolerance) for k, c in POS_NORMS.items()]
    if r["norms"].get("W_E"):
        et = r["norms"]["W_E"]
        out += [row(c, round(et[k], 4), abs(et[k] - c.published) <= c.tolerance) for k, c in TOKEN_NORMS.items()]
    sn = r["sinusoidal"]
    if sn is not None:
        out.append(row(SINUSOIDAL_NORM, round(sn["norms"]["mean"], 4), abs(sn["norms"]["mean"] - np.sqrt(384)) < 1e-6))
    return out
