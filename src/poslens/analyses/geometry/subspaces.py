"""Hidden-state geometry across layers ("Dissecting the Frog", parts 3-4).

For a prompt, at every probing point (0 = token + position embeddings, i = output of
block i-1; the last point goes through ``ln_final`` by default, as Hugging Face's
``hidden_states`` do), the hidden states ``X [N tokens, D]`` are centred over tokens and

* the Gram matrix ``G = Xc Xc^T`` is diagonalised (through the SVD of ``Xc``); its
  eigenvalues divided by ``N - 1`` are the covariance spectrum ``lambda``;
* the signal subspace is the eigen-directions above the Marchenko-Pastur edge
  ``sigma^2 (1 + sqrt(1/M))^2`` with ``M = (N - 1) / D`` samples per feature, the noise
  variance ``sigma^2`` estimated iteratively from the eigenvalues below the edge
  (``noise="iterative"``), from all of them (``"total"``), or given;
  or (``subspace="gap"``) the directions before the largest spectral-gap ratio
  ``Q_i = (lambda_i - lambda_{i+1}) / (lambda_{i+1} - lambda_{i+2})``;
* consecutive points' subspaces are compared by principal angles (``scipy.linalg.
  subspace_angles``), their sum (the slides' PA) and the overlap: the share of angles
  with ``cos > threshold``;
* effective dimensionality (participation ratio ``(sum lambda)^2 / sum lambda^2`` and
  the Roy-Vetterli effective rank of ``lambda``), the rank of the union of every point's
  subspace, and an MDS map of the points by Grassmann distance ``sqrt(sum theta^2)``.

Subspaces live in feature space (R^D, the right singular vectors of ``Xc``) by default,
which is where the slides' union rank ("19 (2.47%)" of 768) is measured; ``space="tokens"``
uses the Gram eigenvectors in R^N, as the slides' ``U_d(i) U_d(i+1)^T`` is written.
Prompts of several lengths are prefixes of one text, so one causal forward pass of the
longest gives every shorter one exactly.

Here a model's prompts (:func:`hidden_subspaces`, its result and summary); the measurements
on the arrays are :mod:`.hidden_states`' (:func:`~.hidden_states.hidden_geometry`).

>>> from poslens.models import load_weights
>>> r = hidden_subspaces(load_weights("tiny"))                   # doctest: +SKIP
>>> r.prompts["short"].union_rank, r.prompts["long"].dims  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from ...errors import InvalidInputError
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import ClaimRow, Result
from .hidden_states import HiddenGeometry, hidden_geometry
from .options import DEFAULT_LENGTHS, SubspacesOptions
from .probe import probe_hooks, probe_labels, prompt_ids, prompt_tokenizer, require_forward

# An original passage (written for poslens, public domain) long enough for the slides'
# 500-token prompt under GPT-2's tokenizer.
DEFAULT_TEXT = (
    "The lighthouse at the end of the northern pier was built in the spring of a dry year, when the river ran "
    "low and the fishermen had little to do but watch the masons work. It took four months to raise the tower. "
    "The stones came by cart from a quarry two days inland, and every evening the carters stopped at the inn by "
    "the bridge, where they told the same stories about wolves, floods and the old king who had once slept in "
    "the barn. When the lamp was lit for the first time, the whole town walked out along the pier to see it. "
    "Children ran ahead of their parents, dogs barked at the waves, and the mayor gave a speech that nobody "
    "could hear over the wind. The keeper was a quiet man named Thomas, who had served on merchant ships for "
    "twenty years and knew every rock on that coast by its shape in the dark. He lived in a small room at the "
    "foot of the tower with a table, a bed, a shelf of books and a clock that he wound every morning at six. "
    "Each night he climbed the narrow stairs, trimmed the wick, cleaned the glass and wrote in his log the "
    "weather, the ships he had seen and the hour the lamp was lit. In winter the storms came from the east, and "
    "for days the spray rose higher than the gallery. Once a fishing boat lost its rudder in the fog and drifted "
    "toward the rocks below the harbour wall. Thomas rang the bell until his arms ached, and the crew, hearing it, "
    "dropped their anchor just in time. The next morning they brought him a basket of bread, cheese and smoked "
    "fish, and the youngest of them stayed to learn how the lamp worked. Over the years the town grew. A railway "
    "reached the valley, a school was built near the church, and the market moved from the square to a long hall "
    "beside the station. Steamships replaced the sailing boats, and the harbour was deepened so that larger "
    "vessels could unload coal, timber and grain. The lighthouse was painted white with a red band, and its old "
    "oil lamp was replaced by a brighter one that turned on a bed of mercury. Thomas grew old, but he still wrote "
    "in his log each night. When he finally retired, the young fisherman who had learned the lamp from him took "
    "his place, and the town held a dinner in the market hall. There were songs, long speeches and a cake shaped "
    "like the tower. Thomas said only a few words. He thanked the masons, the carters and the sailors, and he "
    "reminded everyone that a light is only useful if someone keeps it burning through the worst nights of the "
    "year. Then he walked home along the pier, stopped for a while to watch the beam sweep across the water, and "
    "went to bed early, as he always had. People in the town still tell the story of the night of the fog, and "
    "the old log books are kept in a glass case in the library, open at the page where he wrote that the sea was "
    "calm, the wind was from the west and every ship had come safely home."
)


def plan_lengths(n_available: int, n_ctx: int, lengths: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Requested prompt lengths capped at n_ctx and at the text's length, with notes."""
    out, notes = {}, []
    for name, L in lengths.items():
        L = int(L)
        if L < 3:
            raise InvalidInputError(f"prompt length {name}={L} is too short; a subspace needs at least 3 tokens")
        cap = min(L, n_ctx, n_available)
        if cap < L:
            why = f"n_ctx={n_ctx}" if cap == n_ctx and n_ctx < n_available else f"the text has {n_available} tokens"
            notes.append(f"{name} prompt capped at {cap} tokens (asked {L}; {why})")
        if cap < 3:
            raise InvalidInputError(f"the text has only {n_available} token(s); a subspace needs at least 3")
        out[name] = cap
    return out, notes


@dataclass(frozen=True)
class SubspaceResult(Result):
    """Per prompt (``prompts["short"|"medium"|"long"]``, a :class:`~.hidden_states.HiddenGeometry`):
    spectra, MP and gap subspaces, principal angles, overlap, effective dimensionality, union rank
    and the MDS map. The slides' figures (``reference``: prompt -> figure -> value) come from
    :func:`poslens.claims.dissecting_the_frog.geometry.with_claims`."""

    kind = "subspaces"
    prompts: dict[str, HiddenGeometry] = field(default_factory=dict)
    reference: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def hidden_subspaces(
    weights: Weights,
    tokens: Sequence[int] | torch.Tensor | None = None,
    options: SubspacesOptions | None = None,
    *,
    text: str | None = None,
    tokenizer=None,
    states: dict[str, torch.Tensor] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    **overrides,
) -> SubspaceResult:
    """Hidden-state geometry of prompts of several lengths (prefixes of one text).

    Give ``tokens`` (ids) or ``text`` (+ ``tokenizer``; default: a built-in passage);
    ``options`` (:class:`SubspacesOptions`; keywords replace its fields).
    ``lengths`` maps names to token counts (default short 15, medium 150, long 500),
    capped at n_ctx and the text's length with a note; ``whole=True`` uses the whole text
    as one prompt (an error if it is longer than n_ctx). ``states`` (probe hook -> [1, N, D])
    skips the forward pass (the report shares it).

    >>> r = hidden_subspaces(load_weights("tiny"), lengths={"short": 15})   # doctest: +SKIP
    """
    from ...models.runner import Runner

    o = resolve(SubspacesOptions, options, overrides, "hidden_subspaces")
    weights = as_weights(weights, "hidden_subspaces")
    cfg = weights.cfg
    prompt = (DEFAULT_TEXT if text is None else text) if tokens is None else tokens
    tokenizer = prompt_tokenizer(weights, prompt, tokenizer, "hidden_subspaces")
    ids = prompt_ids(prompt, tokenizer, o.prepend_bos)
    notes: list[str] = []
    if o.whole:
        if len(ids) > cfg.n_ctx:
            raise InvalidInputError(f"the prompt has {len(ids)} tokens, longer than the model's context "
                                    f"n_ctx={cfg.n_ctx}; shorten it or use lengths")
        plan = {"whole": len(ids)}
        if len(ids) < 3:
            raise InvalidInputError(f"the prompt has {len(ids)} token(s); a subspace needs at least 3")
    else:
        plan, notes = plan_lengths(len(ids), cfg.n_ctx, o.lengths or DEFAULT_LENGTHS)
    hooks = probe_hooks(cfg.n_layers, o.final_ln)
    labels = probe_labels(cfg.n_layers, o.final_ln)
    acts = states
    if acts is None:
        require_forward(weights, "hidden-state subspaces (a token forward pass through every layer)")
        acts = Runner(weights, device, dtype).run(torch.tensor([ids[:max(plan.values())]]), hooks=hooks)
    full = [acts[h][0].double().numpy() for h in hooks]
    prompts: dict[str, HiddenGeometry] = {}
    for name, L in plan.items():
        g = hidden_geometry([x[:L] for x in full], labels, subspace=o.subspace, space=o.space, threshold=o.threshold,
                            noise=o.noise, seed=o.seed)
        prompts[name] = replace(g, text=tokenizer.decode(ids[:L])) if tokenizer is not None else g
    options = {**asdict(o), "lengths": plan,
               "text": ("default passage" if tokens is None and text in (None, DEFAULT_TEXT)
                        else "given text" if tokens is None else "given tokens"),
               "n_samples": "N - 1 (token-centred)", "union": "directions with cos <= threshold to the span so far",
               "grassmann": "sqrt(sum theta^2) over min(k_i, k_j) angles",
               "dispersion": "mean over pairs of mean angle / 90 deg"}
    return SubspaceResult(model=weights.label, processing=weights.processing, options=options, prompts=prompts,
                          notes=notes)


def summarize(result: SubspaceResult) -> list[str]:
    lines = []
    for name, g in result.prompts.items():
        cons = [c.sum_deg for c in g.consecutive if c.sum_deg is not None]
        nan = float("nan")
        lines.append(
            f"{name} ({g.n_tokens} tokens): signal dims per point {g.dims}; consecutive principal-angle sums "
            f"{min(cons) if cons else nan:.1f}-{max(cons) if cons else nan:.1f} deg; "
            f"mean pairwise {g.mean_pairwise_sum_deg if g.mean_pairwise_sum_deg is not None else nan:.1f} deg, "
            f"dispersion {g.dispersion if g.dispersion is not None else nan:.3f}; "
            f"union rank {g.union_rank} ({100 * g.union_share:.2f}% of {g.ambient_dim})")
    lines += result.notes
    return lines
