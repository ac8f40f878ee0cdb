"""Token sequences for activation analyses: repeated random tokens, sampled tokens, corpus windows.

Every generator is deterministic in its ``seed`` and returns a ``torch.long`` tensor
``[n_seq, seq_len]``; generators that take ``bos`` put that id in column 0.

>>> t = repeated_tokens(2, 9, vocab=100, seed=0, bos=0)
>>> t.shape, bool((t[:, 1:5] == t[:, 5:9]).all())
(torch.Size([2, 9]), True)
>>> sampled_tokens(1, 6, vocab=range(10, 20), seed=1, n_distinct=3).unique().numel() <= 3
True
>>> from poslens.models.tokenizer import Tokenizer
>>> tok = Tokenizer.gpt2()
>>> text_tokens("Hello world", tok).tolist()
[[15496, 995]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ..errors import CorpusError, InvalidInputError

__all__ = [
    "SAMPLE_TEXT",
    "corpus_sequences",
    "read_corpus",
    "repeated_tokens",
    "sampled_tokens",
    "text_tokens",
    "token_pool",
]


# A passage written for poslens (no copyright concerns), used where an analysis needs one
# natural text and the user gave none. Its key words ("lighthouse", "keeper", "Mara",
# "lamp", "harbour", "storm") come back at distances from a few to a few hundred tokens,
# and its function words repeat every few tokens: what duplicate-token neurons feed on.
SAMPLE_TEXT = """\
The lighthouse stood on a black rock at the mouth of the harbour, and for forty years the same keeper had climbed its stairs every evening to light the lamp. His name was Tobias Wren. He was a quiet man who kept a logbook of every ship that passed, every storm that broke against the rock, and every night the lamp failed.
In the autumn of the year the old keeper fell ill, his granddaughter Mara came from the city to help him. She had never lived by the sea. The first night she climbed the stairs she counted them: one hundred and twelve. The lamp was heavier than she expected, and the glass around it was cold and salted from the wind.
Tobias taught her how to trim the wick, how to wind the clockwork that turned the lens, and how to read the sky for a coming storm. Mara wrote everything down in a second logbook, because she did not trust her memory. Each morning she read her notes aloud to him, and each morning he corrected one small thing.
The harbour master came out in his boat once a week with oil for the lamp and bread for the keeper. He told Mara that the ships trusted the lighthouse more than any chart, and that a dark night on the rock could cost a crew their lives. Mara did not sleep well after that.
In December a storm came out of the north. The wind tore a shutter from the lighthouse and the rain ran down the stairs like a stream. Tobias could not leave his bed. Mara climbed the one hundred and twelve stairs alone, wound the clockwork, and lit the lamp. Through the night she watched the beam sweep the water, and twice she saw the lights of a ship turn away from the rock and toward the safe channel.
When the storm passed, the harbour master came out with oil and bread and a letter from the captain of the second ship. The captain thanked the keeper of the lighthouse for the light. Tobias asked Mara to read the letter aloud, and then he asked her to read it again. He said nothing for a long time. Then he opened his old logbook, found the page for December, and wrote her name in it, under his own, as the keeper of the lamp.
"""


def token_pool(vocab: int | Sequence[int] | range, exclude: Iterable[int] = ()) -> torch.Tensor:
    """The ids to draw from: ``range(vocab)`` (or the given ids) minus ``exclude``."""
    ids = torch.arange(vocab) if isinstance(vocab, int) else torch.as_tensor(list(vocab), dtype=torch.long)
    ex = torch.as_tensor(sorted(set(int(e) for e in exclude if e is not None)), dtype=torch.long)
    if ex.numel():
        ids = ids[~torch.isin(ids, ex)]
    if ids.numel() == 0:
        raise InvalidInputError("no token ids left to draw from after exclusions; widen the vocabulary")
    return ids


def _prefix(body: torch.Tensor, bos: int | None) -> torch.Tensor:
    if bos is None:
        return body
    return torch.cat([torch.full((body.shape[0], 1), int(bos), dtype=torch.long), body], 1)


def _draw_from(n_seq, seq_len, vocab, seed, exclude, bos) -> tuple[torch.Tensor, int, torch.Generator]:
    """The ids to draw from, the length less the BOS column and the seeded generator, once the sizes are checked."""
    if n_seq < 1 or seq_len < 2 + (bos is not None):
        raise InvalidInputError(f"need n_seq >= 1 and seq_len >= {2 + (bos is not None)}; got {n_seq}, {seq_len}")
    return token_pool(vocab, [*exclude, bos]), seq_len - (bos is not None), torch.Generator().manual_seed(int(seed))


def repeated_tokens(
    n_seq: int,
    seq_len: int,
    vocab: int | Sequence[int] | range,
    seed: int = 0,
    exclude: Iterable[int] = (),
    bos: int | None = None,
) -> torch.Tensor:
    """Random tokens followed by the same tokens again: ``[bos] t_1..t_h t_1..t_{L-h}``.

    The first half holds distinct tokens (drawn without replacement), so every query in
    the second half has exactly one earlier copy, ``h`` positions back, and no query in
    the first half has one. ``seq_len`` counts the BOS column when ``bos`` is given.
    """
    pool, L, g = _draw_from(n_seq, seq_len, vocab, seed, exclude, bos)
    h = (L + 1) // 2
    if pool.numel() < h:
        raise InvalidInputError(f"{h} distinct tokens needed per half but only {pool.numel()} are available")
    firsts = torch.stack([pool[torch.randperm(pool.numel(), generator=g)[:h]] for _ in range(n_seq)])
    body = torch.cat([firsts, firsts[:, : L - h]], 1)
    return _prefix(body, bos)


def sampled_tokens(
    n_seq: int,
    seq_len: int,
    vocab: int | Sequence[int] | range,
    seed: int = 0,
    exclude: Iterable[int] = (),
    bos: int | None = None,
    n_distinct: int | None = None,
) -> torch.Tensor:
    """Tokens drawn independently from ``n_distinct`` ids chosen per sequence.

    With few distinct ids most queries have several earlier copies at spread-out
    distances (geometric with mean ``n_distinct``), which is what a decay profile needs.
    """
    pool, L, g = _draw_from(n_seq, seq_len, vocab, seed, exclude, bos)
    k = min(int(pool.numel() if n_distinct is None else n_distinct), pool.numel())
    if k < 1:
        raise InvalidInputError("n_distinct must be >= 1")
    rows = []
    for _ in range(n_seq):
        ids = pool[torch.randperm(pool.numel(), generator=g)[:k]]
        rows.append(ids[torch.randint(0, k, (L,), generator=g)])
    return _prefix(torch.stack(rows), bos)


def read_corpus(path: str | Path, what: str = "corpus") -> str:
    """The text of a corpus file (``what`` names it in errors), with a clear error when it is missing,
    empty or not text."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise CorpusError(f"{what} {p} is a directory; pass a path to a UTF-8 text file in it")
    if not p.is_file():
        raise CorpusError(f"{what} {p} does not exist; pass a path to a UTF-8 text file")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CorpusError(f"cannot read {what} {p} ({exc.strerror})") from exc
    if not text.strip():
        raise CorpusError(f"{what} {p} is empty; give a file with text in it")
    # A stray undecodable byte is tolerated (replaced); a binary file would be scored as if it were text.
    bad = text.count("\ufffd") + text.count("\x00")
    if bad > 0.01 * len(text):
        raise CorpusError(f"{what} {p} is not UTF-8 text ({bad / len(text):.0%} of it does not decode as text); "
                          "give a text file")
    return text


def text_tokens(text: str, tokenizer, prepend_bos: bool = False, max_len: int | None = None) -> torch.Tensor:
    """One text as ``[1, n_tokens]`` ids (truncated to ``max_len``); at least two tokens are required."""
    ids = tokenizer.encode(text, prepend_bos=prepend_bos)
    if max_len is not None:
        ids = ids[:max_len]
    if len(ids) - int(prepend_bos) < 2:
        raise InvalidInputError(
            f"the text has {len(ids) - int(prepend_bos)} token(s); at least two are needed to look for earlier copies"
        )
    return torch.tensor([ids], dtype=torch.long)


def text_windows(text: str, tokenizer, seq_len: int, n_max: int, bos: int | None = None, *,
                 short: str = "raise") -> torch.Tensor:
    """Consecutive windows of ``seq_len`` tokens of one text (BOS first when ``bos`` is given), at
    most ``n_max``: fewer when the text runs out, which the caller can tell from the row count.
    A text shorter than one window raises, or with ``short="one"`` gives one window of its own length.

    >>> text_windows("a b a b a b", word_tok, 3, 4).tolist()    # doctest: +SKIP
    [[1, 2, 1], [2, 1, 2]]
    """
    body = seq_len - (bos is not None)
    if body < 2:
        raise InvalidInputError(f"a window of {seq_len} tokens is too short; use at least {2 + (bos is not None)}")
    ids = tokenizer.encode(text)
    chunks = [ids[i:i + body] for i in range(0, len(ids) - body + 1, body)][:n_max]
    if not chunks:
        if len(ids) < 2:
            raise InvalidInputError(f"the text has {len(ids)} token(s); at least two are needed")
        if short != "one":
            raise InvalidInputError(f"the text has {len(ids)} tokens, fewer than one window of {body}; use a longer "
                                    "text (or a corpus) or a shorter sequence length")
        chunks = [ids]
    return torch.tensor([([bos] if bos is not None else []) + c for c in chunks], dtype=torch.long)


def corpus_sequences(
    path: str | Path,
    tokenizer,
    seq_len: int,
    n_seq: int,
    seed: int = 0,
    prepend_bos: bool = False,
) -> torch.Tensor:
    """``n_seq`` windows of exactly ``seq_len`` tokens from random places in a text file.

    Windows start at line beginnings chosen with ``seed``; only the text around each start
    is tokenised, so a 5 MB corpus costs milliseconds. A corpus too short for a window
    raises :class:`~poslens.errors.CorpusError`; a short one yields fewer windows.
    """
    if seq_len < 2 or n_seq < 1:
        raise InvalidInputError(f"need seq_len >= 2 and n_seq >= 1; got {seq_len}, {n_seq}")
    text = read_corpus(path)
    body = seq_len - int(prepend_bos)
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n" and i + 1 < len(text)] if len(text) < 200_000 else None
    g = torch.Generator().manual_seed(int(seed))
    if starts is None:
        # Large corpus: random character offsets snapped forward to the next line start.
        offs = torch.randint(0, max(1, len(text) - 1), (n_seq * 3,), generator=g).tolist()
        starts = sorted({(text.find("\n", o) + 1) if text.find("\n", o) >= 0 else 0 for o in offs})
    order = torch.randperm(len(starts), generator=g).tolist()
    rows: list[list[int]] = []
    chars = max(64, body * 8)
    for j in order:
        if len(rows) == n_seq:
            break
        s = starts[j]
        n = chars
        while True:
            ids = tokenizer.encode(text[s : s + n])
            if len(ids) > body or s + n >= len(text):
                break
            n *= 2
        if len(ids) < body:
            continue
        rows.append(([tokenizer.bos_token_id] if prepend_bos else []) + ids[:body])
    if not rows:
        raise CorpusError(f"corpus {path} holds fewer than {body} tokens after any line start; use a longer text or a shorter --seq-len")
    return torch.tensor(rows, dtype=torch.long)
