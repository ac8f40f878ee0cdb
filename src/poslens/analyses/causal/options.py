"""Options of the causal commands, each default declared once (the CLI's flags and the report's
``--set causal_*.*`` come from here); light to import. Options hold choices; what to ablate
(heads, neurons, a direction), the prompts and the metrics are inputs, passed beside them.

>>> HelixAblationOptions().k
3
>>> HelixAblationOptions(kind="noise")
Traceback (most recent call last):
poslens.errors.InvalidInputError: kind must be one of zero, mean; got 'noise'
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import check_choices, options_class

ABLATIONS = ("zero", "mean", "resample")


def _at_least(**values) -> None:
    for name, (value, low) in values.items():
        if value is not None and value < low:
            raise InvalidInputError(f"{name} must be at least {low}; got {value}")


@options_class
class AblationOptions:
    """``poslens ablate run``: how the named heads / neurons / direction are ablated and measured."""

    kind: str = field(default="zero", metadata={"help": "how to ablate", "choices": ABLATIONS})
    positions: tuple[int, ...] | None = field(default=None, metadata={
        "help": "positions to ablate, e.g. -1 or 0,5 (default: all)"})
    mean_over: str = field(default="sequences", metadata={
        "help": "sequences: mean per position over the reference; all: over positions too",
        "choices": ("sequences", "all")})
    data: str = field(default="sample", metadata={
        "help": "sequences to measure: sample, repeated, distinct, corpus:PATH or text:TEXT"})
    reference: str = field(default="input", metadata={
        "help": "reference for mean/resample: input (the data itself) or another data spec"})
    position: int = field(default=-1, metadata={"help": "position the neuron/logit/readout metrics read"})
    n_seq: int = field(default=16, metadata={"help": "sequences"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence (capped at n_ctx)"})
    n_baseline: int = field(default=10, metadata={"help": "random ablations of the same size (0: none)",
                                                  "range": "[0, inf)"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    batch_size: int | None = field(default=None, metadata={"help": "sequences per forward pass (default: all)"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least(n_seq=(self.n_seq, 1), seq_len=(self.seq_len, 2), n_baseline=(self.n_baseline, 0),
                  batch_size=(self.batch_size, 1))


@options_class
class PatchOptions:
    """``poslens patch``: which activations are patched between the clean and corrupted prompts."""

    sweep: str = field(default="resid", metadata={"help": "resid: layers x positions; heads: one head at a time",
                                                  "choices": ("resid", "heads")})
    hook: str | None = field(default=None, metadata={
        "help": "resid: resid_pre|resid_mid|resid_post|attn_out|mlp_out (default resid_pre); "
                "heads: z|q|k|v|result (default z)"})
    layers: tuple[int, ...] | None = field(default=None, metadata={"help": "layers to sweep, e.g. 0,1,2 (default: all)"})
    positions: tuple[int, ...] | None = field(default=None, metadata={
        "help": "resid: positions to sweep; heads: positions patched (default: all)"})
    position: int = field(default=-1, metadata={"help": "position the metric reads"})
    mode: str = field(default="denoise", metadata={
        "help": "denoise: clean activations into the corrupted run; noise: the reverse", "choices": ("denoise", "noise")})
    method: str = field(default="auto", metadata={
        "help": "resid sweep: suffix (recompute from the patch on), full, or auto", "choices": ("auto", "suffix", "full")})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS to the prompts"})
    batch_size: int | None = field(default=None, metadata={"help": "runs per forward pass"})

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least(batch_size=(self.batch_size, 1))


@options_class
class DupNeuronAblationOptions:
    """``poslens ablate dup-neurons``: the duplicate-token heads ablated, the duplicate neurons watched."""

    layer: int = field(default=0, metadata={"help": "layer of the heads (and of the MLP whose neurons are read)"})
    heads: tuple[int, ...] | None = field(default=None, metadata={
        "help": "duplicate heads of the layer, e.g. 1,5 (default: those scoring >= threshold)"})
    threshold: float = field(default=0.2, metadata={"help": "duplicate score at or above which a head counts"})
    neurons: tuple[int, ...] | None = field(default=None, metadata={
        "help": "neurons to watch, e.g. 1168,3 (default: chosen by select)"})
    select: str = field(default="pvo", metadata={
        "help": "pvo: the duplicate-neuron analysis's |PVO| ranking; activation: largest repeated - non-repeated gap",
        "choices": ("pvo", "activation")})
    n_neurons: int = field(default=8, metadata={"help": "neurons chosen by select"})
    kind: str = field(default="mean", metadata={"help": "how to ablate the heads", "choices": ABLATIONS})
    reference: str = field(default="distinct", metadata={
        "help": "mean/resample over distinct-token sequences (no copies) or over the measured ones (input)",
        "choices": ("distinct", "input")})
    n_seq: int = field(default=32, metadata={"help": "repeated (and as many distinct) sequences"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence (capped at n_ctx and the vocabulary)"})
    n_random: int = field(default=10, metadata={"help": "random head sets and random neuron sets"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    batch_size: int | None = field(default=None, metadata={"help": "sequences per forward pass (default: all)"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least(n_random=(self.n_random, 2), n_seq=(self.n_seq, 2), n_neurons=(self.n_neurons, 1),
                  batch_size=(self.batch_size, 1))
        if self.neurons is not None and not self.neurons:
            raise InvalidInputError("the neuron list is empty; name at least one neuron or leave it out")


@options_class
class WordIndexAblationOptions:
    """``poslens ablate word-index``: the word-index probe subspace ablated, the signal patched between prompts."""

    layer: int | None = field(default=None, metadata={
        "help": "residual point of the ablated probe (default: a third of the way)"})
    later: tuple[int, ...] | None = field(default=None, metadata={
        "help": "later points whose probes are read, e.g. 2,3,4 (default: all later)"})
    patch_point: int | None = field(default=None, metadata={
        "help": "later point whose probe is the patching metric (default: the next)"})
    kind: str = field(default="resample", metadata={"help": "how to ablate the subspace",
                                                    "choices": ("resample", "mean")})
    n_train: int = field(default=3000, metadata={"help": "training points (last tokens) for the probes"})
    n_val_prompts: int = field(default=300, metadata={"help": "validation prompts"})
    n_units: int = field(default=7, metadata={"help": "words per prompt"})
    dictionary_size: int = field(default=20000, metadata={"help": "words drawn from the tokenizer's vocabulary"})
    lengths_a: tuple[int, ...] = field(default=(3, 1), metadata={"help": "word token lengths of prompt A"})
    lengths_b: tuple[int, ...] = field(default=(1, 2, 1), metadata={
        "help": "word token lengths of prompt B (same total, another number of words)"})
    n_pairs: int = field(default=64, metadata={"help": "A/B prompt pairs patched"})
    n_random: int = field(default=10, metadata={"help": "random subspaces of the probe's rank (the baseline)"})
    C: str | float = field(default="auto", metadata={"help": "probe inverse regularisation, or auto"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    batch_size: int = field(default=64, metadata={"help": "prompts per forward pass"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least(n_random=(self.n_random, 2), n_pairs=(self.n_pairs, 1), n_units=(self.n_units, 2),
                  batch_size=(self.batch_size, 1))
        if str(self.C) != "auto":
            try:
                positive = float(self.C) > 0
            except ValueError:
                positive = False
            if not positive:
                raise InvalidInputError(f"C must be a positive number or auto; got '{self.C}'")
        a, b = self.lengths_a, self.lengths_b
        if not a or not b or min(*a, *b) < 1:
            raise InvalidInputError("word token lengths must be positive integers, e.g. 3,1 and 1,2,1")
        if sum(a) != sum(b) or len(a) == len(b):
            raise InvalidInputError(f"word lengths {list(a)} and {list(b)} must cover the same number of tokens (so "
                                    "positions align) in a different number of words (so the word index differs)")

    @property
    def inverse_regularisation(self) -> float | str:
        return "auto" if str(self.C) == "auto" else float(self.C)


@options_class
class HelixAblationOptions:
    k: int = field(default=3, metadata={"help": "top principal components of W_pos to remove"})
    skip_first: bool = field(default=True, metadata={
        "help": "leave position 0 out of the PCA (as the helix post does)"})
    center: bool = field(default=True, metadata={"help": "centre W_pos's rows before the PCA"})
    kind: str = field(default="zero", metadata={
        "help": "zero: project the subspace out; mean: replace it by its mean over positions", "choices": ("zero", "mean")})
    corpus: str | None = field(default=None, metadata={"help": "text file for the loss (default: the sample passage)"})
    n_seq: int = field(default=16, metadata={"help": "text windows"})
    seq_len: int = field(default=128, metadata={"help": "tokens per window (capped at n_ctx)"})
    n_random: int = field(default=10, metadata={"help": "random subspaces of the same size (the baseline)"})
    prev_threshold: float = field(default=0.3, metadata={
        "help": "clean previous-token attention of the heads followed"})
    positional_only: bool | None = field(default=None, metadata={
        "help": "input = W_pos alone, layer 0's attention only (default: when the model lacks W_E or W_U)"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    batch_size: int | None = field(default=None, metadata={"help": "sequences per forward pass (default: all)"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least(k=(self.k, 1))
        if self.n_random < 2:
            raise InvalidInputError(f"n_random must be at least 2 (a baseline needs a spread); got {self.n_random}")
