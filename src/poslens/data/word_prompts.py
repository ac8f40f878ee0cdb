"""Prompts whose tokens belong to numbered units: words, sentences, list items, code lines.

The default reproduces the "emergent positional embeddings" experiment: a fixed prefix,
then seven random lowercase common English words of 1 to 3 tokens each, *under the
model's own tokenizer* (a 4,096-token BPE splits words very differently from GPT-2's).
The token length is drawn uniformly first, then a word of that length, with replacement
(as in the post: no filtering of repeats or of sense). The dictionary (``wordfreq``'s
frequency-ranked English list, cleaned of clitic fragments and vowel-less abbreviations)
is split per token length into disjoint train and validation words, so validation
prompts contain no word seen in training.

Each prompt records, for every unit, the span ``(first, last)`` of its token positions;
a probe label is the unit's index at its last (or first) token.

Schemes (``SCHEMES``): ``word`` (the post), ``list`` (comma-separated single words after
"Shopping list:"), ``sentence`` (2-5 dictionary words, capitalised, ending in "."; the
unit includes its full stop) and ``code`` (one Python statement per line built from
dictionary words; the unit excludes the newline before it). Token lengths are controlled
only where a unit is one space-prefixed word (``word``, ``list``); in ``sentence`` and
``code`` the words are drawn the same way but their tokenisation in context differs
(capitalised, or without a leading space).

>>> from poslens.models.tokenizer import Tokenizer
>>> tok = Tokenizer.gpt2()
>>> d = word_dictionary(tok, size=3000, lengths=(1, 2), seed=0)
>>> ps = make_prompts(tok, d, "word", split="train", n_prompts=2, seed=0)
>>> len(ps.spans[0])
7
>>> pts = ps.points("last")     # prompt index, absolute position, unit index per labelled token
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError

POST_PREFIX = (
    "The United States Declaration of Independence received its first formal public reading, in Philadelphia.\nWhen"
)
_FIRST_LINE = POST_PREFIX.split("\n")[0]

# Every scheme starts from the post's generic filler line, then an anchor that makes the
# first unit's format the same as the others' (each unit starts after a space or newline).
DEFAULT_PREFIXES = {
    "word": POST_PREFIX,
    "sentence": _FIRST_LINE + "\nNotes:",
    "list": _FIRST_LINE + "\nShopping list:",
    "code": "import os\nimport sys\n\nresult = None",
}
SCHEMES = tuple(DEFAULT_PREFIXES)
SCHEME_UNITS = {"word": "word", "sentence": "sentence", "list": "list item", "code": "line"}

# Code lines: identifiers and calls built from dictionary words.
_CODE_TEMPLATES = (
    "{a} = {b}",
    "{a} = {b}({c})",
    "{a}.{b}({c})",
    "{a} = {b}.{c}",
    "{a} += {b}",
    "print({a})",
    "{a}_{b} = {c}",
)

# wordfreq splits contractions ("don't" -> "don", "t"), so its list holds fragments that
# are not words; single letters other than these two are such fragments or initials.
_ONE_LETTER_WORDS = {"a", "i"}
_VOWEL = re.compile("[aeiouy]")
_MAX_REDRAWS = 20


@dataclass(frozen=True)
class WordDictionary:
    """Words grouped by their token length (with a leading space) under one tokenizer,
    split into disjoint train and validation halves per length."""

    train: dict[int, tuple[str, ...]]
    val: dict[int, tuple[str, ...]]
    size: int
    n_candidates: int
    train_fraction: float
    tokenizer: str

    def words(self, split: str) -> dict[int, tuple[str, ...]]:
        if split not in ("train", "val"):
            raise InvalidInputError(f"split must be 'train' or 'val', not '{split}'")
        return self.train if split == "train" else self.val

    def counts(self) -> dict[str, dict[int, int]]:
        return {s: {k: len(v) for k, v in self.words(s).items()} for s in ("train", "val")}

    def info(self) -> DictionaryInfo:
        """What a result records of the dictionary (no word lists)."""
        return DictionaryInfo(tokenizer=self.tokenizer, size=self.size, n_candidates=self.n_candidates,
                              train_fraction=self.train_fraction, words_per_length=self.counts())


@dataclass(frozen=True)
class DictionaryInfo:
    """A word dictionary as a result records it: tokenizer, size asked for, candidate words, the share
    of words kept for training prompts, and words per token length in each split."""

    tokenizer: str
    size: int
    n_candidates: int
    train_fraction: float
    words_per_length: dict[str, dict[int, int]]  # "train" / "val" -> token length -> words


def common_words(size: int, clean: bool = True) -> list[str]:
    """The ``size`` most frequent English words (``wordfreq``) that are lowercase ASCII letters.

    ``clean`` also drops single letters other than "a"/"i" (contraction fragments such as
    "s", "t", "d") and words without a vowel ("mr", "bbc", "nypd").

    >>> common_words(8)
    ['the', 'to', 'and', 'of', 'a', 'in', 'i', 'is']
    """
    import wordfreq

    if size < 1:
        raise InvalidInputError(f"dictionary size must be positive, got {size}")
    out = [w for w in wordfreq.top_n_list("en", size) if w.isascii() and w.isalpha() and w.islower()]
    if clean:
        out = [w for w in out if (len(w) > 1 or w in _ONE_LETTER_WORDS) and _VOWEL.search(w)]
    return out


def word_dictionary(
    tokenizer,
    size: int = 20000,
    lengths: Sequence[int] = (1, 2, 3),
    train_fraction: float = 0.8,
    seed: int = 0,
    min_words: int = 5,
    words: Sequence[str] | None = None,
) -> WordDictionary:
    """Bucket words by token length (as ``" word"``) and split each bucket train/val.

    ``words`` replaces the ``wordfreq`` list (each is lowercased and deduplicated, so a
    word can never land in both splits). Raises :class:`InvalidInputError` naming the
    token length that has fewer than ``min_words`` words in either split.

    >>> from poslens.models.tokenizer import Tokenizer
    >>> d = word_dictionary(Tokenizer.gpt2(), size=5000)
    >>> d.counts()["val"]
    {1: 900, 2: 60, 3: 12}
    """
    lengths = tuple(sorted(set(int(x) for x in lengths)))
    if not lengths or min(lengths) < 1:
        raise InvalidInputError(f"token lengths must be positive integers, got {list(lengths)}")
    if not 0.0 < train_fraction < 1.0:
        raise InvalidInputError(f"train fraction must be between 0 and 1, got {train_fraction}")
    if words is not None:
        cand = list(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
        bad = [w for w in cand if any(c.isspace() for c in w)]
        if bad:
            raise InvalidInputError(f"dictionary entry {bad[0]!r} contains whitespace; give one word per entry")
    else:
        cand = common_words(size)
    buckets: dict[int, list[str]] = {k: [] for k in lengths}
    for w in cand:
        n = len(tokenizer.encode(" " + w))
        if n in buckets:
            buckets[n].append(w)
    rng = np.random.default_rng(seed)
    train, val = {}, {}
    for k in lengths:
        ws = sorted(buckets[k])
        order = rng.permutation(len(ws))
        n_train = int(round(train_fraction * len(ws)))
        train[k] = tuple(ws[i] for i in order[:n_train])
        val[k] = tuple(ws[i] for i in order[n_train:])
        if min(len(train[k]), len(val[k])) < min_words:
            fix = ("give more words of that length" if words is not None
                   else f"raise the dictionary size (now {size})")
            raise InvalidInputError(
                f"the dictionary has only {len(ws)} words of {k} token{'s' if k > 1 else ''} under tokenizer "
                f"{tokenizer.source} ({len(train[k])} train / {len(val[k])} validation; need {min_words} in each); "
                f"{fix} or drop length {k} from the token lengths"
            )
    return WordDictionary(train, val, size if words is None else len(cand), len(cand), train_fraction,
                          tokenizer.source)


@dataclass(frozen=True)
class PromptSet:
    """Tokenised prompts with the token span of every unit.

    ``tokens[i]`` are the ids of prompt i (lengths differ); ``spans[i][u] = (first, last)``
    the absolute positions of unit u's tokens; ``units[i][u]`` its text.
    """

    scheme: str
    split: str
    prefix: str
    prepend_bos: bool
    tokens: list[list[int]]
    spans: list[list[tuple[int, int]]]
    units: list[list[str]]
    texts: list[str] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return len(self.spans[0]) if self.spans else 0

    def __len__(self) -> int:
        return len(self.tokens)

    def points(self, label_token: str = "last") -> dict[str, np.ndarray]:
        """One row per unit per prompt: ``prompt``, ``pos`` (absolute position of the
        labelled token), ``label`` (unit index), ``first``/``last`` (the unit's span),
        ``token`` (the id at ``pos``)."""
        if label_token not in ("last", "first"):
            raise InvalidInputError(f"label token must be 'last' or 'first', not '{label_token}'")
        rows = [(i, s[1] if label_token == "last" else s[0], u, s[0], s[1])
                for i, spans in enumerate(self.spans) for u, s in enumerate(spans)]
        a = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
        tok = np.asarray([self.tokens[i][p] for i, p in zip(a[:, 0], a[:, 1])], dtype=np.int64)
        return {"prompt": a[:, 0], "pos": a[:, 1], "label": a[:, 2], "first": a[:, 3], "last": a[:, 4], "token": tok}


def _unit_text(scheme: str, rng: np.random.Generator, words: dict[int, tuple[str, ...]],
               lengths: tuple[int, ...], sentence_words: tuple[int, int]) -> tuple[str, str]:
    """(separator before the unit, unit text). The separator is not part of the unit."""

    def word() -> str:
        k = lengths[rng.integers(len(lengths))]
        pool = words[k]
        return pool[rng.integers(len(pool))]

    if scheme in ("word", "list"):  # the list's comma is put between items by the caller
        return "", " " + word()
    if scheme == "sentence":
        n = int(rng.integers(sentence_words[0], sentence_words[1] + 1))
        ws = [word() for _ in range(n)]
        return "", " " + " ".join([ws[0].capitalize(), *ws[1:]]) + "."
    t = _CODE_TEMPLATES[rng.integers(len(_CODE_TEMPLATES))]  # "code"; make_prompts has checked the scheme
    return "\n", t.format(a=word(), b=word(), c=word())


def max_prompt_tokens(tokenizer, scheme: str, prefix: str, n_units: int, lengths: Sequence[int],
                      prepend_bos: bool) -> int | None:
    """Worst-case prompt length for schemes whose units have a bounded token count (word,
    list); None for sentence and code, whose lengths are checked prompt by prompt."""
    if scheme not in ("word", "list"):
        return None
    commas = (n_units - 1) * len(tokenizer.encode(",")) if scheme == "list" else 0
    return len(tokenizer.encode(prefix)) + int(prepend_bos) + n_units * max(lengths) + commas


class PromptTooLong(InvalidInputError):
    """A scheme's prompts do not fit the model's context."""


def _check_fits(tokenizer, scheme, prefix, prefix_ids, n_units, lengths, prepend_bos, n_ctx) -> None:
    if len(prefix_ids) + n_units > n_ctx:
        raise PromptTooLong(
            f"the prefix is {len(prefix_ids)} tokens{' with BOS' if prepend_bos else ''}, which leaves no room for "
            f"{n_units} units in the model's context n_ctx={n_ctx}; shorten the prefix"
        )
    worst = max_prompt_tokens(tokenizer, scheme, prefix, n_units, lengths, prepend_bos)
    if worst is not None and worst > n_ctx:
        raise PromptTooLong(
            f"the prefix is {len(prefix_ids)} tokens; with {n_units} {SCHEME_UNITS[scheme]}s of up to {max(lengths)} "
            f"tokens a prompt can reach {worst} tokens but the model's context is n_ctx={n_ctx}; "
            "shorten the prefix or use fewer units"
        )


def make_prompts(
    tokenizer,
    dictionary: WordDictionary,
    scheme: str = "word",
    *,
    split: str = "train",
    n_prompts: int = 100,
    n_units: int = 7,
    lengths: Sequence[int] | None = None,
    prefix: str | None = None,
    prepend_bos: bool = True,
    sentence_words: tuple[int, int] = (2, 5),
    n_ctx: int | None = None,
    seed: int = 0,
) -> PromptSet:
    """``n_prompts`` prompts of ``n_units`` units each, drawing words from ``dictionary``'s ``split``.

    Token ids are the concatenation of the pieces' ids, checked against tokenising the
    whole text, so a unit's span is exact; a draw whose tokens merge across a unit
    boundary is redrawn (a prefix that merges with the first unit is an error). ``n_ctx``
    makes prompts that would not fit an error.

    >>> ps = make_prompts(tok, d, "list", split="val", n_prompts=4, n_units=5)   # doctest: +SKIP
    """
    if scheme not in SCHEMES:
        raise InvalidInputError(f"unknown scheme '{scheme}'; use one of {', '.join(SCHEMES)}")
    if n_units < 2:
        raise InvalidInputError(f"need at least 2 units per prompt to tell them apart, got N={n_units}")
    if n_prompts < 1:
        raise InvalidInputError(f"need at least one prompt, got {n_prompts}")
    words = dictionary.words(split)
    lengths = tuple(sorted(words)) if lengths is None else tuple(int(x) for x in lengths)
    missing = [k for k in lengths if k not in words]
    if missing:
        raise InvalidInputError(
            f"token length {missing[0]} is not in the dictionary (it has lengths {sorted(words)}); rebuild it with that length"
        )
    lo, hi = sentence_words
    if not 1 <= lo <= hi:
        raise InvalidInputError(f"sentence length range must satisfy 1 <= min <= max, got {sentence_words}")
    prefix = DEFAULT_PREFIXES[scheme] if prefix is None else prefix
    if not prefix:
        raise InvalidInputError("the prefix is empty; give at least one token of text before the units")
    prefix_ids = tokenizer.encode(prefix, prepend_bos=prepend_bos)
    if n_ctx is not None:
        _check_fits(tokenizer, scheme, prefix, prefix_ids, n_units, lengths, prepend_bos, n_ctx)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, SCHEMES.index(scheme)])
    sep_ids = {"": [], "\n": tokenizer.encode("\n"), ",": tokenizer.encode(",")}

    def draw() -> tuple[list[int], list[tuple[int, int]], list[str], str]:
        ids, text, sp, us = list(prefix_ids), prefix, [], []
        for u in range(n_units):
            sep, body = _unit_text(scheme, rng, words, lengths, sentence_words)
            if scheme == "list" and u > 0:
                sep = ","
            ids += sep_ids[sep]
            body_ids = tokenizer.encode(body)
            sp.append((len(ids), len(ids) + len(body_ids) - 1))
            ids += body_ids
            text += sep + body
            us.append(body)
        return ids, sp, us, text

    drawn = []  # (ids, spans, units, text) of each prompt
    for _ in range(n_prompts):
        for _attempt in range(_MAX_REDRAWS):
            ids, sp, us, text = draw()
            whole = tokenizer.encode(text, prepend_bos=prepend_bos)
            if whole == ids:
                break
            if whole[: len(prefix_ids)] != prefix_ids:
                raise InvalidInputError(
                    f"tokenizer {tokenizer.source} merges the end of the prefix {prefix[-30:]!r} with the first unit; "
                    "end the prefix where a token ends (e.g. not with a space)"
                )
        else:
            raise InvalidInputError(
                f"tokenizer {tokenizer.source} merged tokens across a unit boundary in {_MAX_REDRAWS} draws in a row "
                f"(last: {text[-80:]!r}); this scheme cannot be tokenised unit by unit with it"
            )
        if n_ctx is not None and len(ids) > n_ctx:
            raise PromptTooLong(
                f"a {scheme} prompt has {len(ids)} tokens but the model's context is n_ctx={n_ctx}; "
                "shorten the prefix or use fewer units"
            )
        drawn.append((ids, sp, us, text))
    tokens, spans, units, texts = (list(x) for x in zip(*drawn))
    return PromptSet(scheme, split, prefix, prepend_bos, tokens, spans, units, texts)


def make_dataset(
    tokenizer,
    scheme: str = "word",
    *,
    n_units: int = 7,
    lengths: Sequence[int] = (1, 2, 3),
    dictionary_size: int = 20000,
    train_fraction: float = 0.8,
    n_train: int = 10000,
    n_val_prompts: int = 2560,
    prefix: str | None = None,
    prepend_bos: bool = True,
    sentence_words: tuple[int, int] = (2, 5),
    n_ctx: int | None = None,
    min_words: int = 5,
    seed: int = 0,
    words: Sequence[str] | None = None,
    dictionary: WordDictionary | None = None,
) -> tuple[PromptSet, PromptSet, WordDictionary]:
    """Train and validation prompt sets on disjoint words, as in the post.

    ``n_train`` counts labelled tokens (the post's 10,000 training points), so there are
    ``ceil(n_train / n_units)`` training prompts; ``n_val_prompts`` prompts (the post's
    2,560) give ``n_units`` validation points each. ``dictionary`` reuses a built one.

    >>> train, val, d = make_dataset(Tokenizer.gpt2(), n_train=700, n_val_prompts=50)   # doctest: +SKIP
    """
    if n_units < 2:
        raise InvalidInputError(f"need at least 2 units per prompt to tell them apart, got N={n_units}")
    if n_train < 1 or n_val_prompts < 1:
        raise InvalidInputError(f"need positive train points and validation prompts, got {n_train} and {n_val_prompts}")
    d = dictionary or word_dictionary(tokenizer, dictionary_size, lengths, train_fraction, seed, min_words, words)
    kw = dict(n_units=n_units, lengths=lengths, prefix=prefix, prepend_bos=prepend_bos,
              sentence_words=sentence_words, n_ctx=n_ctx, seed=seed)
    train = make_prompts(tokenizer, d, scheme, split="train", n_prompts=math.ceil(n_train / n_units), **kw)
    val = make_prompts(tokenizer, d, scheme, split="val", n_prompts=n_val_prompts, **kw)
    return train, val, d
