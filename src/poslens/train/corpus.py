"""Corpus reading, tokenizer training and the train/validation split."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import CorpusError
from ..models.tokenizer import BOS, Tokenizer


def read_texts(paths: list[str]) -> list[str]:
    if not paths:
        raise CorpusError("no corpus files given; pass --corpus FILE (any plain-text file)")
    from ..data.sequences import read_corpus  # the analyses' reader: the same checks and messages

    return [read_corpus(p) for p in paths]


def train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (GPT-2's scheme) trained on ``texts``, with <|endoftext|> as token 0."""
    from tokenizers import Tokenizer as TK
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < 300:  # 256 bytes and <|endoftext|>, and room for merges
        raise CorpusError(f"vocab_size {vocab_size} is too small for a byte-level BPE; give at least 300")
    tk = TK(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tk, source=bpe_name(vocab_size))


def bpe_name(vocab_size: int) -> str:
    return f"byte-level BPE {vocab_size} trained on the corpus"


def tokenize_split(texts: list[str], tok: Tokenizer, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Tokenise each file; its last ``val_frac`` (by characters, cut at a line) is held out.

    Files are joined by <|endoftext|>, as GPT-2's training documents were.
    """
    sep = [tok.bos_token_id] if tok.bos_token_id is not None else []
    train_ids: list[int] = []
    val_ids: list[int] = []
    for text in texts:
        cut = text.rfind("\n", 0, int(len(text) * (1 - val_frac)))
        cut = cut if cut > 0 else int(len(text) * (1 - val_frac))
        for part, dest in ((text[:cut], train_ids), (text[cut:], val_ids)):
            lines = part.splitlines(keepends=True)
            chunk = 2000
            for i in range(0, len(lines), chunk):
                for ids in tok._tk.encode_batch(["".join(lines[i:i + chunk])], add_special_tokens=False):
                    dest.extend(ids.ids)
            dest.extend(sep)
    dt = np.uint16 if tok.vocab_size < 65536 else np.int32
    return np.asarray(train_ids, dtype=dt), np.asarray(val_ids, dtype=dt)


def unigram_entropy(ids: np.ndarray) -> float:
    """Entropy (nats/token) of the token distribution of ``ids``: the loss of a model that ignores context."""
    counts = np.asarray(list(Counter(ids.tolist()).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/token) on ``val`` of train's add-one-smoothed unigram distribution."""
    counts = np.bincount(train.astype(np.int64), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[val.astype(np.int64)].mean())


def check_size(train: np.ndarray, val: np.ndarray, n_ctx: int) -> None:
    for n, what, fix in ((len(train), "the corpus has {} training tokens", "a smaller --n-ctx"),
                         (len(val), "the held-out part has {} tokens", "raise --val-frac")):
        if n <= n_ctx + 1:
            raise CorpusError(f"{what.format(n)}, fewer than one context window ({n_ctx + 1}); give more text or {fix}")


def batch(ids: np.ndarray, rng: np.random.Generator, batch_size: int, n_ctx: int, repeat_frac: float = 0.0,
          random_repeat_frac: float = 0.0, vocab: int | None = None, exclude: int | None = None):
    """Random windows of n_ctx + 1 tokens; a ``repeat_frac`` share repeat a span of themselves,
    and a further ``random_repeat_frac`` share a span of random tokens, twice.

    A repeated sequence copies tokens [a, a+L) of its own window to [a+L+g, a+2L+g), so the
    model sees text occur twice at a varying distance, the situation duplicate-token and
    induction heads serve. In a random repeat the span is first overwritten with tokens
    drawn uniformly from ``vocab`` (never ``exclude``, the BOS id): nothing but the earlier
    copy predicts its second occurrence, which is what forms those heads within a small
    training budget (and what poslens scores them on).
    """
    starts = rng.integers(0, len(ids) - n_ctx - 1, size=batch_size)
    x = np.stack([ids[s:s + n_ctx + 1] for s in starts]).astype(np.int64)
    n_rep = int(round(repeat_frac * batch_size))
    n_rand = int(round(random_repeat_frac * batch_size))
    if n_rand and vocab is None:
        raise ValueError("random repeats need the vocabulary size")
    for r in range(min(batch_size, n_rep + n_rand)):
        L = int(rng.integers(8, n_ctx // 3))
        gap = int(rng.integers(0, n_ctx + 1 - 2 * L))
        a = int(rng.integers(0, n_ctx + 1 - 2 * L - gap + 1))
        if r >= n_rep:
            span = rng.integers(0, vocab, size=L)
            if exclude is not None:
                span[span == exclude] = (exclude + 1) % vocab
            x[r, a:a + L] = span
        x[r, a + L + gap:a + 2 * L + gap] = x[r, a:a + L]
    return x


SYNTHETIC_KINDS = ("repeat", "lag2", "lag2perm", "dup", "dupdist", "reverse")
NEAR = 16  # a ``dupdist`` copy is "near" when its earlier occurrence is at most this many tokens back


def _dup_row(rng: np.random.Generator, n: int, vocab: int, copy_p: float = 0.25, distance: bool = False,
             exclude: int | None = None) -> np.ndarray:
    """Fresh random tokens, some copied once from earlier in the row; every copy is followed by the
    marker ``vocab - 1``, so predicting the marker means finding an earlier copy of the current token.

    No token occurs more than twice, so the earlier copy is never itself followed by the marker: an
    induction head (which predicts what followed the earlier copy) cannot predict it, only a
    duplicate-token head can. (With a small pool of recurring tokens the induction head already
    predicted most markers and no duplicate-token head formed.)

    With ``distance`` the marker says how far back the earlier copy is: ``vocab - 2`` when it
    is at most :data:`NEAR` tokens back, else ``vocab - 1``. Merely detecting a copy (a head
    that moves attention off the first position when the current token occurred before) no
    longer predicts it; the head must read the earlier copy's position, the job the
    duplicate-token heads of GPT-2 small do for the neurons that read them.
    """
    marker = vocab - 2 if distance else vocab - 1
    alphabet = np.array([t for t in range(marker) if t != exclude])
    fresh = rng.permutation(alphabet)
    out: list[int] = []
    single: list[int] = []  # tokens seen once so far
    used = 0
    while len(out) < n:
        if single and (used >= len(fresh) or rng.random() < copy_p):
            t = single.pop(int(rng.integers(len(single))))
            far = out[::-1].index(t) + 1 > NEAR  # distance to its latest occurrence
            out += [t, marker + 1 if distance and far else marker]
        elif used < len(fresh):
            single.append(int(fresh[used]))
            out.append(single[-1])
            used += 1
        else:  # an alphabet smaller than the row: tokens recur, each copy still marked once
            fresh, used = rng.permutation(alphabet), 0
    return np.asarray(out[:n], dtype=np.int64)


def _reverse_row(rng: np.random.Generator, n: int, vocab: int, exclude: int | None = None, start_p: float = 0.08,
                 stop_p: float = 0.2) -> np.ndarray:
    """Fresh random tokens with stretches recited backwards: from a random earlier token, each next token is
    the one that preceded the current token's first occurrence (continuing with probability ``1 - stop_p``).

    Predicting the recitation needs a head that attends to the earlier occurrence of the current token (a
    duplicate-token head) and reads what a previous-token head left there. An induction head reads the
    token *after* the earlier occurrence, which is wrong here; a head that merely detects a copy cannot
    name the token. No token is recited twice, so every earlier occurrence is unique, and a fresh token
    follows every recitation, so a recited token is followed by a recited one only by the rule.
    """
    alphabet = np.array([t for t in range(vocab) if t != exclude])
    fresh, used = rng.permutation(alphabet), 0
    out: list[int] = []
    first: dict[int, int] = {}  # token -> position of its one earlier occurrence (not yet recited)
    while len(out) < n:
        if len(first) >= 4 and rng.random() < start_p:
            k = int(rng.choice(list(first.values())))
            while k >= 0 and out[k] in first and len(out) < n:
                out.append(out[k])
                del first[out[k]]
                if rng.random() < stop_p:
                    break
                k -= 1
            if len(out) >= n:
                break
        if used >= len(fresh):  # an alphabet smaller than the row: begin again on a fresh alphabet
            fresh, used, first = rng.permutation(alphabet), 0, {}
        first[int(fresh[used])] = len(out)
        out.append(int(fresh[used]))
        used += 1
    return np.asarray(out[:n], dtype=np.int64)


def lag2_permutation(vocab: int) -> np.ndarray:
    """The fixed permutation of ``lag2perm`` rows: a derangement (no token maps to itself), from a fixed seed."""
    p = np.random.default_rng(20261202).permutation(vocab)
    fixed = np.flatnonzero(p == np.arange(vocab))
    if len(fixed):  # rotate the fixed points among themselves (or with a neighbour when there is only one)
        cyc = fixed if len(fixed) > 1 else np.array([fixed[0], (fixed[0] + 1) % vocab])
        p[cyc] = p[np.roll(cyc, 1)]
    return p


def synthetic_batch(rng: np.random.Generator, batch_size: int, n_ctx: int, vocab: int,
                    exclude: int | None = None, lag_copy_p: float = 0.7,
                    kinds: tuple[str, ...] = ("repeat", "lag2")) -> np.ndarray:
    """Windows of n_ctx + 1 random tokens that only attention can predict, no text.

    Row r is of kind ``kinds[r % len(kinds)]``:

    - ``repeat``: a span (length 8 .. n_ctx // 2, drawn per window) repeated until the window is
      full; after its first copy each token is predictable only by an induction circuit.
    - ``lag2``: a token two places back that is itself fresh is repeated with probability
      ``lag_copy_p`` (else the token is fresh), so the position just before the current one
      predicts the next token: what a previous-token head reads. The induction circuit needs
      a previous-token head, and on repeats alone it did not form within 900 steps. Copies
      never chain: with chains the token three back predicted the next one too, layer 0
      grew three-back heads, and a copying circuit shifted by one position (attending one
      past the induction target) formed instead of an induction head.
    - ``lag2perm``: as ``lag2``, but the token two places back is replaced by its image under a
      fixed permutation of the vocabulary (the same for every row and run), so a previous-token
      head is still what predicts it, while its output names ``perm(x)``, not ``x``: no later head
      can reuse it as a ready-made copy of the previous token (a copying circuit shifted by one
      position formed on that in a 2-layer model).
    - ``dup``: fresh random tokens, a quarter of them followed later by one copy of an earlier one
      and then the marker ``vocab - 1``, which only attention to the earlier copy of the
      current token (a duplicate-token head) predicts; ``dupdist`` as ``dup`` with two markers,
      one for a copy at most :data:`NEAR` tokens after its first occurrence and one for a
      farther copy, so the head must also carry where the earlier copy is.
    - ``reverse``: fresh random tokens with stretches recited backwards (:func:`_reverse_row`): a
      duplicate-token head reading a previous-token head's output predicts them.

    >>> x = synthetic_batch(np.random.default_rng(0), 2, 64, 100)
    >>> x.shape
    (2, 65)
    """
    bad = [k for k in kinds if k not in SYNTHETIC_KINDS]
    if bad or not kinds:
        raise ValueError(f"synthetic kinds must be among {SYNTHETIC_KINDS}; got {kinds}")
    x = np.empty((batch_size, n_ctx + 1), dtype=np.int64)
    for r in range(batch_size):
        kind = kinds[r % len(kinds)]
        if kind == "reverse":
            x[r] = _reverse_row(rng, n_ctx + 1, vocab, exclude)
        elif kind in ("dup", "dupdist"):
            x[r] = _dup_row(rng, n_ctx + 1, vocab, distance=kind == "dupdist", exclude=exclude)
        elif kind == "repeat":
            L = int(rng.integers(8, max(9, n_ctx // 2 + 1)))
            x[r] = np.resize(rng.integers(0, vocab, size=L), n_ctx + 1)
        else:
            row = rng.integers(0, vocab, size=n_ctx + 1)
            coin = rng.random(n_ctx + 1) < lag_copy_p
            copied = np.zeros(n_ctx + 1, dtype=bool)
            image = lag2_permutation(vocab) if kind == "lag2perm" else np.arange(vocab)
            for t in range(2, n_ctx + 1):
                if coin[t] and not copied[t - 2]:
                    row[t], copied[t] = image[row[t - 2]], True
            x[r] = row
    if exclude is not None:
        x[x == exclude] = (exclude + 1) % vocab
    return x
