"""Emergent positional embeddings: does the residual stream know which word a token is in?

The experiment of the post “Emergent positional embeddings”, done layer by layer and with the controls it lists as missing.
Prompts are a fixed prefix then N random words of 1-3 tokens (:mod:`poslens.data.word_prompts`,
tokenised by the model's own tokenizer); the residual stream is read at the last (or
first) token of every word, at every requested *residual point*, in one batched pass per
prompt set that stops at the deepest point; a multinomial logistic-regression probe
(standardised features, regularisation chosen per point on held-out training prompts,
every point fitted at once) predicts the word's index, and is scored on prompts built from
validation words that never occur in training.

Residual point ``L`` is the stream entering block ``L`` (``blocks.L.hook_resid_pre``;
0 = token + position embeddings) and ``L = n_layers`` the stream after the last block, so
GPT-2 small has 13 points and the post's "residual stream after layer 3" is point 4.

What the post could not rule out is measured beside every probe:

* baselines, probes on features that are not the residual stream: only the labelled
  token's absolute position (one-hot), only whether it begins with a space, and both
  (one-hot of the pair). With a one-hot input such a probe is the best classifier those
  features allow, so ``probe - best baseline`` is the emergent signal;
* a position-balanced evaluation: validation points subsampled so that at every kept
  absolute position each word index present there is equally frequent, where anything
  that knows only the position scores the chance level ``mean(1 / k_p)``;
* first-token against last-token labels, and the other reference schemes (nth sentence,
  nth list item, nth code line) with the same probing.

>>> from poslens.models import load_weights
>>> from poslens.analyses.word_index import word_index, summarize
>>> r = word_index(load_weights("tiny"), n_train=2000, n_val_prompts=300)   # doctest: +SKIP
>>> print("\\n".join(summarize(r)))                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .evaluate import evaluate, one_hot, position_balanced
    from .harvest import check_points, harvest, resid_hook
    from .measure import BASELINES, WordIndexResult, summarize, word_index
    from .options import DEFAULT_CS, LABEL_TOKENS, Options
    from .probes import Probe, fit_probe, fit_probes

__getattr__ = exports(__name__, {
    ".evaluate": ("evaluate", "one_hot", "position_balanced"),
    ".harvest": ("check_points", "harvest", "resid_hook"),
    ".measure": ("BASELINES", "WordIndexResult", "summarize", "word_index"),
    ".options": ("DEFAULT_CS", "LABEL_TOKENS", "Options"),
    ".probes": ("Probe", "fit_probe", "fit_probes"),
})

__all__ = ["BASELINES", "DEFAULT_CS", "LABEL_TOKENS", "Options", "Probe", "WordIndexResult", "check_points", "evaluate",
           "fit_probe", "fit_probes", "harvest", "one_hot", "position_balanced", "resid_hook",
           "summarize", "word_index"]
