"""The options of the attention-sink analysis, each default declared once (the CLI's flags and the report's
``--set`` come from here); light to import.
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import options_class

INPUT_KINDS = ("random_tokens", "repeated_token", "text", "positional")
INPUT_HELP = {
    "random_tokens": "tokens drawn uniformly from the vocabulary",
    "repeated_token": "one random token repeated over the whole sequence (a different token per sequence)",
    "text": "windows of natural text (the corpus, or poslens's sample passage)",
    "positional": "positional inputs alone: the token embedding replaced by zeros (every sequence identical)",
}


@options_class
class Options:
    epsilon: float = field(default=0.3, metadata={"help": "alpha(0) above which a head's first position is a sink",
                                                     "range": "(0, 1)"})
    seq_len: int = field(default=64, metadata={"help": "tokens per sequence (capped at n_ctx)"})
    n_seq: int = field(default=100, metadata={"help": "sequences per input kind"})
    inputs: str = field(default="auto", metadata={
        "help": "comma list of random_tokens, repeated_token, text, positional; auto: every kind the checkpoint allows"})
    corpus: str = field(default="", metadata={"help": "text file for the text inputs (default: the built-in passage)"})
    prepend_bos: bool = field(default=False, metadata={"help": "put BOS at the first position of token inputs"})
    batch_size: int = field(default=25, metadata={"help": "sequences per forward pass"})
    seed: int = field(default=0, metadata={"help": "random seed of the token inputs"})

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon < 1.0:
            raise InvalidInputError(f"epsilon must lie in (0, 1); got {self.epsilon}")
        if self.seq_len < 2 or self.n_seq < 1 or self.batch_size < 1:
            raise InvalidInputError(f"need seq_len >= 2, n_seq >= 1, batch_size >= 1; got {self.seq_len}, {self.n_seq}, "
                                    f"{self.batch_size}")
        for k in self.input_kinds():
            if k not in INPUT_KINDS:
                raise InvalidInputError(f"unknown input kind '{k}'; use auto or a comma list of {', '.join(INPUT_KINDS)}")

    def input_kinds(self) -> tuple[str, ...]:
        if self.inputs.strip() == "auto":
            return INPUT_KINDS
        return tuple(k.strip() for k in self.inputs.split(",") if k.strip())
