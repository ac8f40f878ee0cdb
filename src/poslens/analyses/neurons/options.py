"""The duplicate-neurons options, each default declared once; values are checked on construction,
against the model in :func:`~poslens.analyses.neurons.analysis.duplicate_neurons`.

>>> Options().threshold, Options(ln_scale="none").ln_scale
(30.0, 'none')
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import check_choices, options_class

LN_SCALES = ("approx", "approx-const", "exact-mean", "none")  # how the layer-0 LayerNorm scale is modelled


@options_class
class Options:
    head: tuple[int, int] | None = field(default=None, metadata={
        "help": "head whose positional signal to follow (default: layer 0's strongest duplicate head)"})
    neuron: int | None = field(default=None, metadata={"help": "neuron to decompose (default: the top selected one)"})
    threshold: float = field(default=30.0, metadata={"help": "|PVO| norm above which a neuron is selected"})
    top_k: int = field(default=8, metadata={"help": "neurons taken when none passes the threshold"})
    ln_scale: str = field(default="approx", metadata={
        "help": "layer-0 LayerNorm multiplier applied to W_pos in PVO curves: the study's formula, the same with the "
                "mean |W_pos|, the exact one (mean over tokens), or none (raw PVO)", "choices": LN_SCALES})
    mlp_scale: float | None = field(default=None, metadata={"help": "MLP LayerNorm divisor (default: measured on the text)"})
    fold_ln: bool = field(default=True, metadata={"help": "PVO from weights with LayerNorm folded in"})
    center: bool = field(default=True, metadata={"help": "centre W_E and W_pos (and the other writers) over d_model"})
    text: str | None = field(default=None, metadata={"help": "text for the decomposition (default: corpus, else a passage)"})
    corpus: str | None = field(default=None, metadata={"help": "text file for top activating examples"})
    n_seq: int = field(default=32, metadata={"help": "corpus windows searched for top examples"})
    seq_len: int = field(default=256, metadata={"help": "tokens per window (capped at n_ctx)"})
    k_examples: int = field(default=20, metadata={"help": "top activating examples kept (0: none)", "range": "[0, inf)"})
    uniform_heads: list[tuple[int, int]] | None = field(default=None, metadata={
        "help": "heads the study approximates by the mean over earlier positions (default: detected)"})
    seed: int = field(default=0, metadata={"help": "random seed of token samples and windows"})
    pos_norm_from: int = field(default=100, metadata={"help": "position beyond which |W_pos| is averaged (the study's 3.35)"})
    n_scale_tokens: int = field(default=2048, metadata={"help": "tokens sampled for the LayerNorm-scale study"})
    fit_from: int = field(default=1, metadata={"help": "first position of the linear PVO fits"})
    combined_from: int = field(default=200, metadata={"help": "position after which the combined curve is averaged"})
    max_curves: int = field(default=16, metadata={"help": "PVO curves kept in the result", "range": "[0, inf)"})
    context_before: int = field(default=24, metadata={"help": "tokens shown before a top example", "range": "[0, inf)"})
    context_after: int = field(default=4, metadata={"help": "tokens shown after a top example", "range": "[0, inf)"})
    prepend_bos: bool = field(default=True, metadata={"help": "start the text and corpus windows with BOS"})
    batch_size: int = field(default=8, metadata={"help": "sequences per forward pass"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.mlp_scale is not None and not self.mlp_scale > 0:
            raise InvalidInputError(f"--mlp-scale must be positive; got {self.mlp_scale}")
