"""The five source studies the report checks, named by title and summarised in plain words.

Stages name the studies they compare with by key (``Stage.seed = "helix"`` or
``"helix,frog"``); the page shows the titles and the introduction below, never file names.

>>> titles("twisted_pair,frog")
'“Twisted pair”; “Dissecting the Frog: a hands-on study of the GPT2 transformer”'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    kind: str
    claim: str


STUDIES: dict[str, Study] = {s.key: s for s in (
    Study("helix", "GPT-2's positional embedding matrix is a helix", "a blog post and its comments",
          "GPT-2's learned positional embeddings W_pos lie mostly in a few directions, and the top three principal "
          "components trace a helix; the same holds across the GPT-2 family. The comments ask why a helix, and "
          "whether token and position live in separate subspaces."),
    Study("twisted_pair", "Twisted pair", "a blog post",
          "GPT-2 measures the distance between duplicate tokens with pairs of near-identical ReLU neurons around "
          "'sentry' points on the positional curve, whose common noise cancels like a twisted-pair cable; "
          "because W_pos is a helix, its derivative f' is a linear map of f, which one attention head can compute. "
          "A hand-built toy transformer with an error bound makes the idea exact."),
    Study("duplicate", "Duplicate token neurons in GPT-2 small's first layer",
          "a research write-up; our copy has no title line, so it is named by its subject",
          "Three layer-0 heads of GPT-2 small (0.1, 0.5, 0.10) attend to earlier copies of the current token, "
          "0.1 with attention decaying with distance; through the path W_pos·W_V·W_O·W_in they drive MLP neurons "
          "(e.g. neuron 1168) that fire on a repeated token when its copy lies far back."),
    Study("word_index", "Emergent positional embeddings", "a blog post",
          "Beyond absolute position, GPT-2 small represents which word of a sentence a token belongs to: a linear "
          "probe on the residual stream after layer 3 reads the word index of multi-token words well above what "
          "the token's position alone predicts."),
    Study("frog", "Dissecting the Frog: a hands-on study of the GPT2 transformer", "course slides",
          "A tour of GPT-2 small's geometry: singular-value spectra and effective ranks of its weight matrices, "
          "the norms of positional and token embeddings against the sinusoidal encoding, hidden-state subspaces "
          "and their principal angles across layers, and the logit lens's entropy layer by layer."),
)}


def titles(keys: str) -> str:
    """``"helix,twisted_pair"`` -> the studies' titles in quotes, joined by '; '."""
    named = [k.strip() for k in (keys or "").split(",") if k.strip()]
    return "; ".join(f"“{STUDIES[k].title}”" if k in STUDIES else k for k in named)
