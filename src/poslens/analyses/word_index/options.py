"""The word-index probe's options, each default declared once (the CLI's flags and the report's
``--set word_index.*`` come from here); light to import. Defaults are the post's.

>>> Options().n_train
10000
>>> Options(n_units=1)
Traceback (most recent call last):
poslens.errors.InvalidInputError: need at least 2 units per prompt to tell them apart, got N=1
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import options_class

LABEL_TOKENS = ("last", "first")
# Schemes whose units end in one repeated delimiter token ("." "," newline): a running average of the
# context (attention with any weights, even random ones) carries that token's count, so a probe reads
# their index from a model that learned nothing; only the word scheme can show a learned index.
DELIMITED = ("sentence", "list", "code")
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


@options_class
class Options:
    layers: tuple[int, ...] | None = field(default=None, metadata={
        "help": "residual points to probe, 0..n_layers (0 = embeddings, L = entering block L, n_layers = after the "
                "last block); default: all"})
    schemes: tuple[str, ...] = field(default=("word",), metadata={
        "help": "reference schemes: word, sentence, list, code"})
    n_units: int = field(default=7, metadata={"help": "units (words, items ...) per prompt, N >= 2"})
    lengths: tuple[int, ...] = field(default=(1, 2, 3), metadata={
        "help": "token lengths of the words (under the model's tokenizer)"})
    dictionary_size: int = field(default=20000, metadata={"help": "most frequent English words considered (wordfreq)"})
    train_fraction: float = field(default=0.8, metadata={"help": "share of each length's words used for training"})
    n_train: int = field(default=10000, metadata={"help": "training points (labelled tokens)"})
    n_val_prompts: int = field(default=2560, metadata={"help": "validation prompts (N points each)"})
    prefix: str | dict[str, str] | None = field(default=None, metadata={
        "help": "text before the units, one for every scheme or one per scheme (default: each scheme's own)"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    label_tokens: tuple[str, ...] = field(default=LABEL_TOKENS, metadata={
        "help": "probe the last and/or the first token of each unit"})
    C: str | float = field(default="auto", metadata={
        "help": "inverse L2 regularisation of the probes, or 'auto' (chosen per probe on held-out training prompts)"})
    Cs: tuple[float, ...] = field(default=DEFAULT_CS, metadata={"help": "candidate C values for 'auto'"})
    max_iter: int = field(default=1000, metadata={"help": "L-BFGS iterations per probe fit"})
    balance_min: int = field(default=10, metadata={
        "help": "points a (position, index) cell needs to enter the position-balanced evaluation"})
    combined: bool = field(default=False, metadata={
        "help": "also probe the residual together with the one-hot position and space features"})
    key_layer: int | None = field(default=None, metadata={
        "help": "residual point of the key plot and findings (default: a third of the depth)"})
    batch_size: int = field(default=64, metadata={"help": "prompts per forward batch"})
    seed: int = field(default=0, metadata={"help": "seed of the dictionary split, prompts and probe hold-out"})

    def __post_init__(self) -> None:
        from ...data.word_prompts import SCHEMES

        if not self.schemes:
            raise InvalidInputError(f"no scheme given; use any of {', '.join(SCHEMES)}")
        for s in self.schemes:
            if s not in SCHEMES:
                raise InvalidInputError(f"unknown scheme '{s}'; use any of {', '.join(SCHEMES)}")
        if not self.label_tokens or any(lt not in LABEL_TOKENS for lt in self.label_tokens):
            raise InvalidInputError(f"label tokens must be 'last' and/or 'first', got {list(self.label_tokens)}")
        C = self.C
        if isinstance(C, str) and C != "auto":
            try:
                C = float(C)
            except ValueError:
                raise InvalidInputError(f"the probe's C must be a positive number or 'auto', got '{C}'") from None
        if not isinstance(C, str) and not C > 0:
            raise InvalidInputError(f"the probe's C must be a positive number or 'auto', got {C}")
        object.__setattr__(self, "C", C)
        if not self.Cs or any(not c > 0 for c in self.Cs):
            raise InvalidInputError(f"the candidate Cs must be positive numbers, got {list(self.Cs)}")
        if self.n_units < 2:
            raise InvalidInputError(f"need at least 2 units per prompt to tell them apart, got N={self.n_units}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch size must be positive, got {self.batch_size}")
        if not self.lengths:
            raise InvalidInputError("no token lengths given; use e.g. 1,2,3")
