"""The duplicate-heads analysis end to end: validate, build the sequences, read the patterns,
rank the heads, profile the duplicate ones and check the post's GPT-2 small figures."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ...errors import CorpusError, MissingTensorError, NotApplicableError, PoslensError
from ...models.runner import Runner
from ...models.weights import Weights, as_weights
from ...options import resolve
from ..reach import runner_for
from .harvest import copy_pairs, pattern_stats, positional_attention, text_windows, token_classes
from .measure import DecayProfile, decay_profile
from .options import Options, check_heads, check_layers
from .result import DupHeadsResult, HeadScores, ScoredData, ScoredSequences


def duplicate_heads(
    weights: Weights,
    opts: Options | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    runner: Runner | None = None,
    **kw,
) -> DupHeadsResult:
    """Score every head in ``layers`` for duplicate-token attention and describe the duplicate heads.

    Options (:class:`Options`) come as ``opts`` or as keywords (``duplicate_heads(w, layers=[0],
    n_seq=32)``); keywords override ``opts``. Sequences: ``n_seq`` repeated random-token
    sequences (``repeated_tokens``), ``n_text_seq`` windows of ``corpus`` (if given; else
    consecutive windows of ``text``, if given), and for the decay profiles sampled-token
    sequences with ``profile_distinct`` distinct ids (default ``seq_len // 8``) so copies occur
    at many distances. ``threshold`` marks duplicate-token heads by their ``rank_by`` score
    (``repeated`` or ``text``). ``runner`` (default: a new one on ``weights``) lets a caller
    share one runner's prepared weights. ``weights`` may be a model name or checkpoint directory.

    >>> duplicate_heads("tiny", layers=[0], n_seq=8).ranking[:3]   # doctest: +SKIP
    """
    from ...data.sequences import corpus_sequences, repeated_tokens, sampled_tokens
    from ...models.tokenizer import Tokenizer, as_tokenizer

    o = resolve(Options, opts, kw, "duplicate_heads")  # validates the values
    weights = as_weights(weights, "duplicate_heads")
    tokenizer = as_tokenizer(tokenizer, "duplicate_heads", weights)
    cfg = weights.cfg
    layers = check_layers(weights, o.layers)
    check_heads(weights, o.profile_heads)
    P = min(256 if o.seq_len is None else o.seq_len, cfg.n_ctx)  # 0 is no length, not the default
    options = {**dataclasses.asdict(o), "layers": layers, "seq_len": P, "corpus": str(o.corpus) if o.corpus else None,
               "text": None if o.text is None else ("given" if o.corpus is None else "ignored: corpus given"),
               "profile_distinct": max(2, P // 8) if o.profile_distinct is None else o.profile_distinct, "dtype": dtype,
               "average": "pooled over query positions with an earlier copy"}
    # A rotary model has no position table: positional inputs alone would be all zeros, and
    # its heads' "attention" on them an artefact of the zero input.
    learned = cfg.positional == "learned"
    if o.positional_only and not learned:
        raise NotApplicableError(f"positional inputs alone do not apply: {weights.label} has {cfg.positional} "
                                 "positions, no W_pos table, so they would be all zeros; score token inputs "
                                 "(without --positional-only)")
    if not o.positional_only and not weights.has("embed.W_E"):
        raise MissingTensorError("wte.weight", "duplicate-token head scores on token sequences; "
                                 "pass --positional-only to run just the positional-attention part", weights.label)
    runner = runner_for(weights, runner, "duplicate_heads", device, dtype)
    notes: list[str] = []
    pos = positional_attention(runner, [0]) if (o.positional or o.positional_only) and learned else None
    if o.positional and not learned:
        notes.append(f"no run on positional inputs alone: {cfg.positional} positions, no W_pos table")
    if o.positional_only:
        return DupHeadsResult(model=weights.label, processing=weights.processing, options=options, positional=pos,
                              notes=["positional inputs only: token scores were not computed"])
    if tokenizer is None and (o.corpus is not None or o.text is not None):
        tokenizer = Tokenizer.for_checkpoint(weights.source)
    elif tokenizer is None and o.prepend_bos:
        # Random-token scores need no tokenizer; only its BOS id. A model without usable
        # tokenizer files (a bare synthetic checkpoint) is scored without BOS.
        try:
            tokenizer = Tokenizer.for_checkpoint(weights.source)
        except PoslensError as exc:
            notes.append(f"no tokenizer ({exc}); sequences start without BOS")
    bos = tokenizer.bos_token_id if (o.prepend_bos and tokenizer is not None) else None
    if o.prepend_bos and tokenizer is not None and bos is None:
        notes.append("the tokenizer has no BOS token; sequences start without one")
    options["bos_token_id"] = bos
    ignore = tuple(x for x in (bos,) if x is not None)
    # Text first: a bad corpus or text fails before any forward pass.
    text_tokens = None
    if o.corpus is not None:
        text_tokens = corpus_sequences(o.corpus, tokenizer, P, o.n_text_seq, seed=o.seed, prepend_bos=bos is not None)
    elif o.text is not None:
        text_tokens = text_windows(o.text, tokenizer, P, o.n_text_seq, bos, short="one")
        if len(text_tokens) < o.n_text_seq:
            notes.append(f"the text holds {len(text_tokens)} window(s) of {P} tokens, not the {o.n_text_seq} asked "
                         "for; give a corpus for more")
    rep = repeated_tokens(o.n_seq, P, cfg.d_vocab, seed=o.seed, exclude=ignore, bos=bos)
    back = (P - (bos is not None) + 1) // 2  # how far back each copy lies in those sequences
    blind = [l for l in layers if (cfg.window_at(l) or back + 1) <= back]
    if blind:  # a local / sliding-window layer cannot see the copies: its 0 is no finding
        notes.append(f"layer{'s' * (len(blind) > 1)} {', '.join(map(str, blind))} attend{'' if len(blind) > 1 else 's'} "
                     f"within a window of {cfg.window} positions and each copy in the repeated sequences lies {back} "
                     f"back, so {'their' if len(blind) > 1 else 'its'} repeated-token scores are 0 by construction; "
                     f"--seq-len {2 * cfg.window - 2 + (bos is not None)} or less keeps the copies in view")
    st = pattern_stats(runner, rep, layers, o.batch_size, ignore)
    rep_score, rep_seq, prev, ind, first = st.pooled(), st.seqmean(), st.prev(), st.induction(), st.first()
    shifted = st.shifted()
    text_score = text_seq = None
    repeated = ScoredSequences(n_seq=o.n_seq, seq_len=P, n_dup_queries=int(st.dup_count.sum()))
    text_info = None
    if text_tokens is not None:
        tst = pattern_stats(runner, text_tokens, layers, o.batch_size, ignore)
        text_info = ScoredSequences(n_seq=int(text_tokens.shape[0]), seq_len=int(text_tokens.shape[1]),
                                    n_dup_queries=int(tst.dup_count.sum()))
        if tst.dup_count.sum() == 0:
            where = f"corpus window(s) of {o.corpus}" if o.corpus is not None else "window(s) of the text"
            why = f"no token in the {text_info.n_seq} {where} has an earlier copy"
            if o.rank_by == "text":
                raise CorpusError(f"{why}, so there is nothing to rank heads by; use a longer or more natural text, "
                                  "or --rank-by repeated")
            text_info = dataclasses.replace(text_info, empty_reason=why + "; text scores are undefined")
            notes.append(text_info.empty_reason)
        else:
            text_score, text_seq = tst.pooled(), tst.seqmean()
    raw: dict[str, dict[str, Any]] = {}
    for i, l in enumerate(layers):
        for h in range(cfg.n_heads):
            raw[f"{l}.{h}"] = {
                "layer": l, "head": h,
                "score": float(rep_score[i, h]) if o.rank_by == "repeated" else (
                    None if text_score is None else float(text_score[i, h])),
                "score_repeated": float(rep_score[i, h]), "score_repeated_seqmean": float(rep_seq[i, h]),
                "score_text": None if text_score is None else float(text_score[i, h]),
                "score_text_seqmean": None if text_seq is None else float(text_seq[i, h]),
                "prev_token_score": float(prev[i, h]),
                "induction_score": float(ind[i, h]),
                "first_position_score": float(first[i, h]),
                "shifted_induction_score": float(shifted[i, h]),
            }

    def ranked_by(k):
        s = raw[k]["score"]
        return -(s if s is not None and not math.isnan(s) else -1)

    ranking = sorted(raw, key=ranked_by)
    heads = {k: HeadScores(**raw[k], rank=r + 1, is_duplicate=bool(raw[k]["score"] is not None
                                                                    and raw[k]["score"] >= o.threshold))
             for r, k in enumerate(ranking)}
    dups = [k for k in ranking if heads[k].is_duplicate]
    if not dups:
        notes.append(f"no head scored >= {o.threshold} ({o.rank_by}); best is head {ranking[0]} at {heads[ranking[0]].score:.3f}")
    if o.profile_heads is None and not dups:
        notes.append("no decay profiles: no duplicate-token head (pass --profile-heads to profile chosen heads)")
    # decay profiles
    phs = o.profile_heads or [(heads[k].layer, heads[k].head) for k in dups]
    profiles: dict[str, DecayProfile] = {}
    if phs:
        smp = sampled_tokens(o.n_seq, P, cfg.d_vocab, seed=o.seed + 1, exclude=ignore, bos=bos,
                             n_distinct=options["profile_distinct"])
        qid, dist, att = copy_pairs(runner, smp, phs, o.batch_size)
        for hk in phs:
            profiles[f"{hk[0]}.{hk[1]}"] = decay_profile(qid, dist, att[hk], uniform_half_distance=o.uniform_half_distance)
    tc = None
    if phs and text_tokens is not None:
        tc = token_classes(runner, text_tokens, phs, tokenizer, o.n_frequent, o.group_threshold, o.batch_size, ignore)
        if tc.reason:
            notes.append(f"no token classes: {tc.reason}")
    return DupHeadsResult(
        model=weights.label, processing=weights.processing, options=options, heads=heads, ranking=ranking,
        duplicate_heads=dups, profiles=profiles, token_classes=tc, positional=pos,
        data=ScoredData(repeated=repeated, text=text_info), notes=notes,
    )
