"""The geometry of learned positional embeddings: PCA of ``W_pos``, its helix, and f' = A f + c.

After the post "GPT-2's positional embedding matrix is a helix", the positional slides of
"Dissecting the Frog" and the GPT-2 remark of the twisted-pair post (a helix lets
f' = W f + c, so an attention head can compute the tangent of the position curve linearly).

The package: :mod:`.measure` (the single-model analysis, :func:`helix`, :class:`HelixResult`),
:mod:`.pca` (PCA, linear ODE fits), :mod:`.fits` (sinusoid and helix fits, dominant
periods), :mod:`.structure` (cosines, outliers, fraying, norms, tokens), :mod:`.curve`
(one matrix's metrics), :mod:`.family` (several models, training sweeps) and
:mod:`.summary` (lines and figures). The published figures it is compared with live in
:mod:`poslens.claims.helix_post` and its neighbours.

>>> from poslens.analyses.helix import helix
>>> r = helix("../shared/data/gpt2-small-partial")                  # doctest: +SKIP
>>> round(r.cumulative[2], 4), r.components_for_90, r.helix.period > 0      # doctest: +SKIP
(0.9106, 3, True)
>>> import numpy as np
>>> from poslens.analyses.helix import pca
>>> pca(np.eye(4), 2).variance_ratio.round(3).tolist()
[0.333, 0.333]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from ..norms import norm_stats
    from .curve import geometry, ode_fits, pca_summary
    from .family import (HelixFamilyResult, HelixSweepResult, family_summary, helix_models, helix_sweep, summary_row,
                         sweep_specs)
    from .fits import HelixFit, SinusoidFit, dominant_periods, fit_helix, fit_sinusoid, short_period_share
    from .measure import NOT_LEARNED, HelixResult, check_options, default_options, helix, helix_with_fit
    from .options import Options
    from .pca import ODE_SCHEMES, OdeFit, PCAFit, components_for, fit_linear_ode, pca, variance_spectrum
    from .structure import cosine_structure, fray, outlier_positions, token_position
    from .summary import summarize

__getattr__ = exports(__name__, {
    "..norms": ("norm_stats",),
    ".curve": ("geometry", "ode_fits", "pca_summary"),
    ".family": ("HelixFamilyResult", "HelixSweepResult", "family_summary", "helix_models", "helix_sweep", "summary_row",
                "sweep_specs"),
    ".fits": ("HelixFit", "SinusoidFit", "dominant_periods", "fit_helix", "fit_sinusoid", "short_period_share"),
    ".measure": ("NOT_LEARNED", "HelixResult", "check_options", "default_options", "helix", "helix_with_fit"),
    ".options": ("Options",),
    ".pca": ("ODE_SCHEMES", "OdeFit", "PCAFit", "components_for", "fit_linear_ode", "pca", "variance_spectrum"),
    ".structure": ("cosine_structure", "fray", "outlier_positions", "token_position"),
    ".summary": ("summarize",),
})

__all__ = [
    "HelixResult", "Options", "NOT_LEARNED", "check_options", "default_options", "geometry", "helix", "helix_with_fit",
    "ode_fits", "pca_summary", "summarize",
    "ODE_SCHEMES", "OdeFit", "PCAFit", "components_for", "fit_linear_ode", "pca", "variance_spectrum",
    "HelixFit", "SinusoidFit", "dominant_periods", "fit_helix", "fit_sinusoid", "short_period_share",
    "cosine_structure", "fray", "norm_stats", "outlier_positions", "token_position",
    "HelixFamilyResult", "HelixSweepResult", "family_summary", "helix_models", "helix_sweep", "summary_row",
    "sweep_specs",
]
