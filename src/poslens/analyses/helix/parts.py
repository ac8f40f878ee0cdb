"""The typed parts of a :class:`~poslens.analyses.helix.HelixResult`: spectra, structure, norms.

Each part keeps the field names of the dict its producer returns (so a result's JSON is
unchanged) and is built from it with ``of``, nested parts included; the producers stay plain functions.

>>> ShortPeriod.of({"period": 4.0, "share": 0.0015}).share
0.0015
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields, is_dataclass

from ..norms import NormStats
from .fits import HelixFit
from .pca import OdeFit


def _build(cls, d: dict):
    """``cls`` from a producer's dict: its keys that are fields, each nested part's dict built likewise."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _value(hints[f.name], d[f.name]) for f in fields(cls) if f.name in d})


def _value(tp, v):
    """``v`` as a field of type ``tp``: a dict becomes the part ``tp`` names (alone or optional), a list of
    dicts a list of parts; anything else (numbers, fits already built) is kept."""
    for arm in typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,):
        if isinstance(v, dict) and is_dataclass(arm):
            return _build(arm, v)
        item = typing.get_args(arm)[0] if typing.get_origin(arm) is list else None
        if isinstance(v, list) and is_dataclass(item):
            return [_value(item, x) for x in v]
    return v


class _FromDict:
    @classmethod
    def of(cls, d: dict | None):
        return None if d is None else _build(cls, d)


@dataclass(frozen=True)
class PeriodShare:
    period: float
    share: float  # of the pooled power


@dataclass(frozen=True)
class ColumnPeriod:
    column: int
    period: float
    cycles: float  # over the analysed positions
    r2: float


@dataclass(frozen=True)
class Periods(_FromDict):
    """The strongest periods of the top components: ``pooled`` over them (largest power first) and
    the best single sinusoid of each ``by_column``."""

    pooled: list[PeriodShare]
    by_column: list[ColumnPeriod]


@dataclass(frozen=True)
class ShortPeriod(_FromDict):
    """The share of W_pos's variance at periods of at most ``period`` positions."""

    period: float
    share: float


@dataclass(frozen=True)
class Traces(_FromDict):
    """The highest-variance dimensions of W_pos along the positions, each with its best period."""

    dims: list[int]
    std: list[float]
    values: list[list[float]]
    periods: list[float]


@dataclass(frozen=True)
class Cosine(_FromDict):
    """Cosine similarity of W_pos rows by offset (``by_offset``), of neighbours (``adjacent``), the
    offset where it is lowest, the period it implies (None without a clear one), and a strided
    cosine ``matrix`` over ``matrix_positions``."""

    by_offset: list[float]
    adjacent: list[float]
    adjacent_mean: float
    adjacent_std: float
    min_offset: int
    min_value: float
    period: float | None
    stride: int
    matrix_positions: list[int]
    matrix: list[list[float]]


@dataclass(frozen=True)
class Outlier:
    position: int
    isolation: float  # nearest-row distance over the median one
    nearest_distance: float
    norm: float


@dataclass(frozen=True)
class Outliers(_FromDict):
    """Rows far from every other row (isolation >= ``threshold`` times the median nearest distance)."""

    threshold: float
    median_nearest_distance: float
    flagged: list[Outlier]
    isolation: list[float]


@dataclass(frozen=True)
class LateNorms(_FromDict):
    """Row norms beyond position ``positions`` (">100"): raw, centred over positions, centred over d_model."""

    positions: str
    mean: float
    mean_centred: float
    mean_centred_d_model: float


@dataclass(frozen=True)
class Norms(_FromDict):
    """Row-norm statistics of W_pos (raw and centred), per position, beyond the truncation, and of
    W_E when it was read (with the token-to-position mean ratio)."""

    W_pos: NormStats
    W_pos_centred: NormStats
    by_position: list[float]
    centring: str
    above: LateNorms | None = None
    W_E: NormStats | None = None
    W_E_centred: NormStats | None = None
    token_to_position_mean_ratio: float | None = None


@dataclass(frozen=True)
class Fray(_FromDict):
    """How far early positions stay outside the late top-``k`` subspace: the ``residual`` share per
    position, its late ``baseline``, and ``fray_end``, the first position back within ``threshold``."""

    k: int
    cut: int
    residual: list[float]
    baseline: float
    threshold: float
    mean_before_cut: float
    mean_after_cut: float
    fray_end: int | None


@dataclass(frozen=True)
class TokenPosition(_FromDict):
    """Where token embeddings lie relative to W_pos's top-``k`` subspace: mean (|)cosine with the
    positions, and the share of W_E's variance inside the subspace against ``chance`` (k / d)."""

    k: int
    mean_cosine: float
    mean_abs_cosine: float
    abs_cosine_tokens: int
    subspace_share: float
    subspace_share_uncentred: float
    chance: float


@dataclass(frozen=True)
class OdeByK(_FromDict):
    """The linear-ODE fit's R² (central differences and Savitzky-Golay) and its two longest periods
    with ``k`` components."""

    k: int
    r2_central: float
    r2_savgol: float | None
    periods_central: list[float]
    periods_savgol: list[float] | None


@dataclass(frozen=True)
class Truncation(_FromDict):
    """The same PCA and fits on part of the positions (``range``, [start, stop)); ``helix``, ``ode``
    and ``ode_smoothed`` are :func:`~poslens.analyses.helix.fit_helix` / ``fit_linear_ode`` fits."""

    range: list[int]
    n_positions: int
    variance_explained: list[float]
    cumulative: list[float]
    components_for_90: int
    components_for: dict[str, int]  # "50" / "90" / "95" (% of variance) -> components
    coords: list[list[float]]
    helix: HelixFit | None = None
    ode: OdeFit | None = None
    ode_smoothed: OdeFit | None = None


@dataclass(frozen=True)
class Encoding:
    """The sinusoidal encoding a result compared against (:func:`poslens.analyses.sinusoidal.describe`)."""

    formula: str
    base: float
    n_ctx: int
    d_model: int
    layout: str
    expected_row_norm: float  # sqrt(d_model / 2)


@dataclass(frozen=True)
class SinusoidalGeometry(Truncation):
    """The same metrics for the sinusoidal encoding of W_pos's shape (``encoding`` says which)."""

    encoding: Encoding | None = None
    periods: Periods | None = None
    short_period: ShortPeriod | None = None
    ode_by_k: list[OdeByK] | None = None
    cosine: Cosine | None = None
    norms: NormStats | None = None
