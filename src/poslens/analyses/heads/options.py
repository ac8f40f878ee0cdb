"""The duplicate-heads options, each default declared once, and the checks of heads and layers
against a model.

>>> Options(n_seq=8).threshold
0.2
>>> Options(rank_by="text")
Traceback (most recent call last):
poslens.errors.InvalidInputError: rank_by='text' needs natural text: a corpus file (--corpus) or a text
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING

from ...errors import InvalidInputError
from ...options import check_choices, options_class

if TYPE_CHECKING:
    from ...models.weights import Weights


@options_class
class Options:
    layers: tuple[int, ...] | None = field(default=None, metadata={"help": "layers to score, e.g. 0,1 (default: all)"})
    n_seq: int = field(default=64, metadata={"help": "repeated random-token sequences"})
    seq_len: int | None = field(default=None, metadata={"help": "tokens per sequence (default 256, capped at n_ctx)"})
    seed: int = field(default=0, metadata={"help": "random seed of the sequences"})
    threshold: float = field(default=0.2, metadata={"help": "score at or above which a head is a duplicate-token head",
                                                     "range": "(0, 1]"})
    corpus: str | None = field(default=None, metadata={"help": "text file for natural-text scores and token classes"})
    n_text_seq: int = field(default=32, metadata={"help": "windows drawn from the corpus (or the text)"})
    text: str | None = field(default=None, metadata={"help": "natural text scored in consecutive windows (no corpus)"})
    rank_by: str = field(default="repeated", metadata={"help": "score that ranks heads and marks duplicate-token heads",
                                                       "choices": ("repeated", "text")})
    profile_heads: list[tuple[int, int]] | None = field(
        default=None, metadata={"help": "heads for decay profiles (default: the duplicate heads)"})
    profile_distinct: int | None = field(
        default=None, metadata={"help": "distinct tokens per profile sequence (default seq_len/8)"})
    uniform_half_distance: float = field(default=200.0, metadata={"help": "half-distance above which a head is uniform"})
    n_frequent: int = field(default=12, metadata={"help": "frequent tokens compared in token classes"})
    group_threshold: float = field(default=0.3, metadata={"help": "affinity both ways that joins two tokens in a class"})
    positional: bool = field(default=True, metadata={"help": "also layer-0 attention on positional inputs alone"})
    positional_only: bool = field(default=False, metadata={"help": "only the positional part (works without W_E)"})
    prepend_bos: bool = field(default=True, metadata={"help": "start every sequence with BOS"})
    batch_size: int = field(default=8, metadata={"help": "sequences per forward pass"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.rank_by == "text" and self.corpus is None and self.text is None:
            raise InvalidInputError("rank_by='text' needs natural text: a corpus file (--corpus) or a text")
        if self.n_seq < 1 or self.n_text_seq < 1 or self.batch_size < 1:
            raise InvalidInputError(f"n_seq, n_text_seq and batch_size must be >= 1; got {self.n_seq}, "
                                    f"{self.n_text_seq}, {self.batch_size}")
        if not 0 < self.threshold <= 1:
            raise InvalidInputError(f"threshold is a share of attention in (0, 1]; got {self.threshold}")


def check_heads(weights: Weights, heads: list[tuple[int, int]] | None) -> None:
    """Raise InvalidInputError for a (layer, head) the model does not have.

    >>> from poslens.models import load_weights
    >>> check_heads(load_weights("tiny"), [(0, 99)])
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: head 0.99 does not exist: ...
    """
    cfg = weights.cfg
    for l, h in heads or []:
        if not (0 <= l < cfg.n_layers and 0 <= h < cfg.n_heads):
            raise InvalidInputError(
                f"head {l}.{h} does not exist: {weights.label} has layers 0..{cfg.n_layers - 1} "
                f"and heads 0..{cfg.n_heads - 1} per layer"
            )


def check_layers(weights: Weights, layers: list[int] | None) -> list[int]:
    """The sorted layers asked for (all when None); InvalidInputError for one out of range."""
    n = weights.cfg.n_layers
    if isinstance(layers, int):  # layers=0 is layer 0, not "none given"
        layers = [layers]
    layers = list(range(n)) if not layers else sorted(set(int(l) for l in layers))
    for l in layers:
        if not 0 <= l < n:
            raise InvalidInputError(f"layer {l} does not exist: {weights.label} has layers 0..{n - 1}")
    return layers
