"""What the word-index causal check records: the probes it ablates, the ablation, and the patching.

>>> FollowStay(follow_a=0.9, stay_b=0.05, logit_diff=2.1).follow_a
0.9
"""

from __future__ import annotations

from dataclasses import dataclass

from .baselines import ArmComparison, Comparison, Spread
from .intervention import InterventionRecord
from .metrics import MetricRecord
from .patching import PatchResult


@dataclass(frozen=True)
class PointProbe:
    """The word-index probe at one residual point: validation accuracy, its C, whether it converged,
    and the hook it reads."""

    accuracy: float
    C: float
    converged: bool
    hook: str


@dataclass(frozen=True)
class ProbeAblation:
    """The probe subspace ablated on the validation prompts: each later point's probe accuracy and the
    loss on the word tokens, clean vs ablated, against random subspaces of the same rank."""

    intervention: InterventionRecord
    random: list[InterventionRecord]
    accuracy: dict[str, ArmComparison]  # by residual point
    loss: ArmComparison
    n_prompts: int
    n_points: int
    loss_over: str


@dataclass(frozen=True)
class SubspacePatch:
    """Only the probe subspace patched from A into B at the last position: how often the later probe
    then predicts A's word index, and its logit difference, against random subspaces."""

    follow_a: float
    stay_b: float
    logit_diff: float
    random_follow_a: Spread
    random_logit_diff: Spread
    vs_random: Comparison  # logit-difference change (patched - unpatched) against random subspaces


@dataclass(frozen=True)
class PatchPairs:
    """The prompt pairs patched: A's word lengths and B's, how many, the position read (the last),
    the word index each predicts there, and one example of each (as tokens)."""

    a_lengths: list[int]
    b_lengths: list[int]
    n: int
    position: int
    a_index: int
    b_index: int
    example_a: list[str]
    example_b: list[str]


@dataclass(frozen=True)
class FollowStay:
    """How often the later probe predicts A's word index (``follow_a``) or B's (``stay_b``), and its
    mean logit difference (A - B)."""

    follow_a: float
    stay_b: float
    logit_diff: float


@dataclass(frozen=True)
class WordIndexPatching:
    """A into B: the residual-stream sweep (``sweep``), B unpatched (``b_run``), the whole stream
    patched at the probe's point (``full_patch``) and only the probe subspace (``subspace``)."""

    pairs: PatchPairs
    metric: MetricRecord
    sweep: PatchResult
    b_run: FollowStay
    full_patch: FollowStay
    subspace: SubspacePatch


@dataclass(frozen=True)
class WordIndexData:
    """The prompts: how many to train and validate the probes on, their shared prefix and its length in
    tokens, and the dictionary's word counts (split -> word length -> words)."""

    train_prompts: int
    val_prompts: int
    prefix: str
    prefix_tokens: int
    dictionary: dict[str, dict[int, int]]
