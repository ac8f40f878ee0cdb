"""Metrics read during a forward pass: one number (or a few) per sequence, never the whole activation.

A :class:`Metric` names the hook it reads and a function ``fn(activation, rows)`` that
reduces the activation of a chunk of rows to ``[rows, *shape]`` values; ``rows`` are the
indices of the rows in the *base* input (so per-sequence data such as target tokens or
answer ids can be looked up even when the input was repeated for a sweep). Metrics read
through read-only edits, so a run never stores the activation it measures.

>>> m = logit_diff(weights, good=" Mary", bad=" John", tokenizer=tok)      # doctest: +SKIP
>>> m = neuron_activation(0, [1168], positions=None)                         # doctest: +SKIP
>>> m = direction_readout("blocks.3.hook_resid_post", probe_w[2] - probe_w[1])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInputError
from ...models.runner import HookContext
from ...models.tokenizer import as_tokenizer
from .intervention import _tuple, resolve_positions


@dataclass(frozen=True)
class MetricRecord:
    """A metric as a result records it: name, hook, positions read, shape and component labels, and
    ``info``, the parameters of its kind (``info["kind"]``: "logit difference" with its good and bad
    tokens, "neuron activation" with its layer and neurons, ...)."""

    name: str
    hook: str
    positions: list[int] | None
    shape: list[int]
    labels: list[str]
    info: dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """What to measure: ``fn(act [rows, ...], base_rows [rows]) -> [rows, *shape]`` at ``hook``.

    ``positions`` are the positions ``fn`` reads (None: possibly all); patching uses them
    to skip cells that cannot affect the metric (a causal model cannot move an earlier
    position). ``labels`` name the components of a vector-valued metric.
    """

    name: str
    hook: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    positions: tuple[int, ...] | None = None
    shape: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> MetricRecord:
        return MetricRecord(name=self.name, hook=self.hook,
                            positions=None if self.positions is None else list(self.positions),
                            shape=list(self.shape), labels=list(self.labels), info=dict(self.info))


def check_metric(m) -> Metric:
    """``m`` if it is a Metric, else one InvalidInputError saying what one is."""
    if not isinstance(m, Metric):
        raise InvalidInputError(f"a metric is a Metric (next_token_loss(tokens), logit_diff(...), neuron_activation(...)); "
                                f"got {m!r} (specs such as 'loss' are what ablate_named and patch_prompts read)")
    return m


class MetricStore:
    """Collects metric values for every row of a (possibly repeated) run."""

    def __init__(self, metrics: Sequence[Metric], n_rows: int, n_base: int):
        names = [check_metric(m).name for m in metrics]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"metric names must be unique; got {names}")
        self.metrics = list(metrics)
        self.n_rows, self.n_base = n_rows, n_base
        self.values = {m.name: np.full((n_rows, *m.shape), np.nan) for m in metrics}

    def readers(self) -> dict[str, list[Callable[[torch.Tensor, HookContext], None]]]:
        out: dict[str, list] = {}
        for m in self.metrics:
            def read(act, ctx, m=m):
                rows = torch.arange(ctx.batch.start, ctx.batch.stop)
                v = m.fn(act, rows % self.n_base)
                self.values[m.name][ctx.batch] = v.detach().double().cpu().numpy().reshape(len(rows), *m.shape)
            out.setdefault(m.hook, []).append(read)
        return out

    def by_variant(self, n_variants: int) -> dict[str, np.ndarray]:
        """``{name: [variant, base_row, *shape]}``."""
        return {k: v.reshape(n_variants, self.n_base, *v.shape[1:]) for k, v in self.values.items()}


def _pos_index(positions, P: int):
    pos = resolve_positions(positions, P, "read by the metric")
    return slice(None) if pos is None else pos


def direction_readout(hook: str, vector, positions: Sequence[int] | None = (-1,), bias: float = 0.0,
                      name: str = "readout") -> Metric:
    """Mean over ``positions`` of ``act · vector + bias`` at a d_model hook (a linear probe's logit).

    >>> m = direction_readout("blocks.0.hook_resid_post", torch.ones(8))
    >>> float(m.fn(torch.ones(2, 3, 8), torch.arange(2))[0])
    8.0
    """
    v = torch.as_tensor(np.asarray(vector, dtype=np.float64)).reshape(-1)

    def fn(act, rows):
        x = act[:, _pos_index(positions, act.shape[1])]
        return (x @ v.to(act.dtype)).reshape(act.shape[0], -1).mean(1) + bias

    return Metric(name, hook, fn, _tuple(positions), info={"kind": "direction readout", "bias": float(bias),
                                            "vector_norm": float(v.norm())})


def _token_id(x: str, tokenizer, what: str) -> int:
    if x.startswith("#") and x[1:].isdigit():
        return int(x[1:])
    if tokenizer is None:
        raise InvalidInputError(f"the {what} token {x!r} is text but the model has no tokenizer; give an id as #123")
    ids = tokenizer.encode(x)
    if len(ids) != 1:
        raise InvalidInputError(f"the {what} token {x!r} is {len(ids)} tokens under {tokenizer.source}; give one token "
                                "(or an id as #123)")
    return ids[0]


def logit_diff(weights, good, bad, position: int = -1, tokenizer=None, name: str = "logit_diff") -> Metric:
    """``logit[good] - logit[bad]`` at ``position``, computed from ``ln_final.hook_normalized``
    and two columns of W_U (the full unembedding is never formed).

    ``good``/``bad``: token ids, strings (with ``tokenizer``; must be one token each), or one
    id per sequence (a list as long as the batch).
    """
    tokenizer = as_tokenizer(tokenizer, "logit_diff", weights)

    def ids(x, what):
        if isinstance(x, str):
            return torch.tensor([_token_id(x, tokenizer, what)])
        t = torch.as_tensor(x, dtype=torch.long).reshape(-1)
        if t.numel() == 0 or int(t.min()) < 0 or int(t.max()) >= weights.cfg.d_vocab:
            raise InvalidInputError(f"the {what} answer id is outside the vocabulary 0..{weights.cfg.d_vocab - 1}")
        return t

    g, b = ids(good, "correct"), ids(bad, "wrong")
    W_U = weights.get("unembed.W_U", needed_for="a logit-difference metric")
    b_U = weights.get("unembed.b_U", needed_for="a logit-difference metric")
    dirs = (W_U[:, g] - W_U[:, b]).T.contiguous()  # [1 or B, d_model]
    bias = b_U[g] - b_U[b]

    def fn(act, rows):
        x = act[:, position % act.shape[1]]
        d = dirs.to(act.dtype)
        if d.shape[0] == 1:
            return x @ d[0] + bias[0].to(act.dtype)
        return (x * d[rows]).sum(-1) + bias[rows].to(act.dtype)

    return Metric(name, "ln_final.hook_normalized", fn, (int(position),),
                  info={"kind": "logit difference", "good": g.tolist(), "bad": b.tolist(), "position": int(position)})


def neuron_activation(layer: int, neurons: int | Sequence[int], positions: Sequence[int] | None = None,
                      hook: str = "post", name: str | None = None) -> Metric:
    """Mean activation of MLP ``neurons`` over ``positions``: ``[rows, n_neurons]`` (a scalar for one neuron)."""
    idx = [int(neurons)] if np.isscalar(neurons) else [int(n) for n in neurons]
    scalar = np.isscalar(neurons)
    if not idx or min(idx) < 0:
        raise InvalidInputError(f"neurons must be one or more indices >= 0; got {neurons}")

    def fn(act, rows):
        # the model is known only here, at its first activation
        if max(idx) >= act.shape[-1]:
            raise InvalidInputError(f"neuron {layer}.{max(idx)} does not exist: the MLP has neurons 0..{act.shape[-1] - 1}")
        v = act[:, _pos_index(positions, act.shape[1])][..., idx].mean(1)
        return v[:, 0] if scalar else v

    return Metric(name or f"neuron {layer}.{','.join(map(str, idx))}", f"blocks.{layer}.mlp.hook_{hook}", fn,
                  _tuple(positions), shape=() if scalar else (len(idx),), labels=tuple(f"{layer}.{n}" for n in idx),
                  info={"kind": "neuron activation", "layer": layer, "neurons": idx})


def masked_neuron_means(layer: int, neurons: Sequence[int], masks: torch.Tensor, mask_names: Sequence[str],
                        hook: str = "post", name: str = "neurons") -> Metric:
    """Mean activation of each neuron over each mask's positions, per sequence: ``[rows, n_neurons, n_masks]``.

    ``masks`` is ``[batch, pos, n_masks]`` bool (e.g. repeated / non-repeated tokens); a
    sequence with no position in a mask gets NaN there (average with ``np.nanmean``).
    """
    idx = [int(n) for n in neurons]
    m = torch.as_tensor(masks, dtype=torch.bool)
    if m.dim() != 3 or m.shape[-1] != len(mask_names):
        raise InvalidInputError("masks must be [batch, pos, n_masks] with one name per mask")
    cnt = m.sum(1).clamp(min=1)  # [B, n_masks]

    def fn(act, rows):
        a = act[..., idx]  # [r, P, k]
        mm = m[rows].to(a.dtype)  # [r, P, n_masks]
        out = torch.einsum("rpk,rpm->rkm", a, mm) / cnt[rows, None, :].to(a.dtype)
        return out.masked_fill(~m[rows].any(1)[:, None, :], float("nan"))

    return Metric(name, f"blocks.{layer}.mlp.hook_{hook}", fn, None, shape=(len(idx), len(mask_names)),
                  labels=tuple(mask_names), info={"kind": "masked neuron means", "layer": layer, "neurons": idx})


def next_token_loss(tokens: torch.Tensor, name: str = "loss", skip_first: int = 0) -> Metric:
    """Mean next-token cross-entropy of each sequence (reads ``logits``).

    ``skip_first`` leaves out the first predictions (e.g. from a BOS position).
    """
    t = torch.atleast_2d(torch.as_tensor(tokens, dtype=torch.long))
    if t.shape[1] - 1 - skip_first < 1:
        raise InvalidInputError("the loss needs at least two tokens per sequence after skip_first")

    def fn(logits, rows):
        if logits.shape[1] != t.shape[1] or int(rows.max()) >= len(t):
            raise InvalidInputError(f"the loss metric was made from {len(t)} x {t.shape[1]} tokens, not the inputs "
                                    "run (longer or more rows); make it from them: next_token_loss(tokens)")
        tgt = t[rows, 1 + skip_first:].to(logits.device)
        lg = logits[:, skip_first:-1].float()
        return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), reduction="none").view(len(rows), -1).mean(1)

    return Metric(name, "logits", fn, None, info={"kind": "next-token loss", "skip_first": skip_first})


def previous_token_attention(layer: int, n_heads: int, offset: int = 1, min_query: int | None = None,
                             name: str | None = None) -> Metric:
    """Each head's mean attention from query q to key q - ``offset`` (q >= max(offset, min_query)): ``[rows, n_heads]``."""
    mq = max(offset, min_query or 0)

    def fn(pattern, rows):
        d = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [r, H, P - offset], query q = offset + i
        return d[..., mq - offset:].mean(-1)

    return Metric(name or f"prev-token attention L{layer}", f"blocks.{layer}.attn.hook_pattern", fn, None,
                  shape=(n_heads,), labels=tuple(f"{layer}.{h}" for h in range(n_heads)),
                  info={"kind": "previous-token attention", "layer": layer, "offset": offset,
                                       "min_query": mq})


def custom(hook: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str = "custom",
           positions: Sequence[int] | None = None, shape: tuple[int, ...] = (), **info) -> Metric:
    """Any function of one hook's activation: ``fn(act [rows, ...], base_rows) -> [rows, *shape]``."""
    return Metric(name, hook, fn, None if positions is None else tuple(positions), shape, info={"kind": "custom", **info})


METRIC_SPECS = ("logit-diff:GOOD|BAD", "neuron:L.N", "loss", "readout:HOOK:FILE.npy", "prev-attention:L.H")


def metric_from_spec(spec: str, weights, *, tokenizer=None, tokens=None, position: int = -1) -> Metric:
    """A metric from a short text spec (the CLI's ``--metric``).

    ``logit-diff:GOOD|BAD`` (token texts, or ids as ``#123``) at ``position``;
    ``neuron:L.N`` (activation at ``position``); ``loss`` (mean next-token loss of
    ``tokens``); ``readout:HOOK:FILE.npy`` (a direction's readout at ``position``, e.g. a
    probe's weight vector); ``prev-attention:L.H`` (mean attention to the previous token).

    >>> metric_from_spec("neuron:0.12", None).hook
    'blocks.0.mlp.hook_post'
    """
    tokenizer = as_tokenizer(tokenizer, "metric_from_spec", weights)
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "logit-diff":
        good, bar, bad = arg.partition("|")
        if not bar or not good or not bad:
            raise InvalidInputError(f"--metric '{spec}' is not logit-diff:GOOD|BAD (e.g. 'logit-diff: Mary| John')")
        g, b = _token_id(good, tokenizer, "correct"), _token_id(bad, tokenizer, "wrong")
        if g == b:  # a token's logit minus its own is 0 under any intervention
            raise InvalidInputError(f"--metric '{spec}' names token {g} as both GOOD and BAD; give two different tokens")
        return logit_diff(weights, g, b, position=position)
    if kind == "neuron":
        try:
            l, n = (int(x) for x in arg.split("."))
        except ValueError:
            raise InvalidInputError(f"--metric '{spec}' is not neuron:LAYER.NEURON (e.g. neuron:0.1168)") from None
        if weights is not None:
            cfg = weights.cfg
            if not (0 <= l < cfg.n_layers and 0 <= n < cfg.d_mlp):
                raise InvalidInputError(f"neuron {l}.{n} does not exist: layers 0..{cfg.n_layers - 1}, neurons 0..{cfg.d_mlp - 1}")
        return neuron_activation(l, n, positions=[position])
    if kind == "loss":
        if tokens is None:
            raise InvalidInputError("the loss metric needs token inputs")
        return next_token_loss(tokens)
    if kind == "readout":
        hook, _, path = arg.rpartition(":")
        if not hook or not path:
            raise InvalidInputError(f"--metric '{spec}' is not readout:HOOK:FILE.npy")
        try:
            v = np.load(path)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read the readout vector {path} ({exc}); give a .npy file with one vector") from None
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if weights is not None and v.size != weights.cfg.d_model:
            raise InvalidInputError(f"the readout vector in {path} has {v.size} dimensions but d_model={weights.cfg.d_model}")
        return direction_readout(hook, v, positions=[position], name=f"readout {path}")
    if kind == "prev-attention":
        try:
            l, h = (int(x) for x in arg.split("."))
        except ValueError:
            raise InvalidInputError(f"--metric '{spec}' is not prev-attention:LAYER.HEAD") from None
        n_heads = weights.cfg.n_heads if weights is not None else h + 1
        if not 0 <= h < n_heads:
            raise InvalidInputError(f"head {l}.{h} does not exist: {n_heads} heads per layer")
        base = previous_token_attention(l, n_heads)
        return Metric(f"prev-attention {l}.{h}", base.hook, lambda a, r, base=base: base.fn(a, r)[:, h], None,
                      info={**base.info, "head": h})
    raise InvalidInputError(f"unknown metric '{spec}'; use one of {', '.join(METRIC_SPECS)}")
