"""What the duplicate-neuron analysis needs of a model: the premise (a learned position table,
pre-LayerNorm sequential blocks), the tensors it reads, and the model cut to its first layers."""

from __future__ import annotations

import dataclasses
import re
from functools import partial

import torch

from ...errors import InvalidInputError
from ...models.checkpoint import StateDictCheckpoint
from ...models.weights import Deferred, Weights


def not_applicable_reason(cfg, label: str = "this model") -> str | None:
    """Why the duplicate-neuron analysis does not apply to a model of ``cfg``'s family, or None.

    PVO (``W_pos · W_V · W_O · W_in``) and the decomposition's positional part read a learned
    position table. The exact per-head decomposition also rests on LayerNorm folding, which
    is exact only before the sublayers that read it (pre-LayerNorm), and on the MLP reading
    the attention's output (sequential blocks): in a parallel block (GPT-NeoX) the MLP reads
    the block's input, so the same layer's heads contribute nothing to its neurons.
    """
    if cfg.positional != "learned":
        return (f"{label} has {cfg.positional} positions, no learned position table W_pos: the PVO path "
                "W_pos·W_V·W_O·W_in and the positional part of a neuron's input do not exist")
    if cfg.normalization != "LN":
        return (f"{label} uses {cfg.normalization} normalization; the exact decomposition folds LayerNorm "
                "weights into the matrices that read them, written for LayerNorm")
    if not cfg.pre_norm:
        return (f"{label} has post-LayerNorm blocks: the LayerNorm after attention rescales the residual stream "
                "itself, so it cannot be folded into the MLP's input weights and no exact per-head "
                "decomposition of a neuron exists")
    if cfg.parallel_attn_mlp:
        return (f"{label} runs attention and MLP in parallel: the MLP reads the block's input, so the same "
                "layer's duplicate head cannot drive its neurons")
    return None


def check_neuron(weights: Weights, neuron: int) -> None:
    """InvalidInputError for a neuron index the model's MLPs do not have."""
    if not 0 <= int(neuron) < weights.cfg.d_mlp:
        raise InvalidInputError(f"neuron {neuron} does not exist: the MLP of {weights.label} has neurons "
                                f"0..{weights.cfg.d_mlp - 1}")


def zero_mlp_reason(weights: Weights, layer: int) -> str | None:
    """Why no neuron of ``layer`` can read a head: its MLP is all zero (an attention-only model), or None."""
    name = layer_names(layer, ("mlp.W_in",))[0]
    if weights.has(name) and not bool(weights.get(name).any()):
        return (f"layer {layer}'s MLP of {weights.label} is all zero (an attention-only model): no neuron reads "
                "the head, so there is no PVO to measure")
    return None


def first_layers(weights: Weights, n_layers: int) -> Weights:
    """The model's first ``n_layers`` layers (plus embeddings and final LayerNorm) as a Weights
    of their own, so processing and forward passes touch nothing deeper.

    >>> w0 = first_layers(load_weights("gpt2"), 1)     # doctest: +SKIP
    >>> w0.cfg.n_layers                                 # doctest: +SKIP
    1
    """
    if n_layers >= weights.cfg.n_layers:
        return weights
    cfg = dataclasses.replace(weights.cfg, n_layers=n_layers)
    keep = [n for n in weights.names() if not (m := re.match(r"blocks\.(\d+)\.", n)) or int(m.group(1)) < n_layers]
    # Under TransformerLens names, each read from the original when first asked for.
    return Weights(StateDictCheckpoint.from_state_dict({}, cfg, weights.label),
                   overrides={n: Deferred(partial(weights.get, n)) for n in keep if weights.has(n)},
                   processing=weights.processing)


def layer_names(layer: int, parts: tuple[str, ...]) -> list[str]:
    return [f"blocks.{layer}.{p}" for p in parts]


_ATTN = ("ln1.w", "ln1.b", "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O")
_MLP = ("ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")


def token_path_names(layer: int) -> list[str]:
    """Tensors a forward pass on tokens needs up to layer ``layer``'s MLP pre-activation."""
    names = ["embed.W_E", "pos_embed.W_pos"]
    for l in range(layer):
        names += layer_names(l, _ATTN + _MLP)
    return names + layer_names(layer, _ATTN + ("ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in"))


def neuron_read(weights: Weights, layer: int, neuron: int) -> tuple[torch.Tensor, float]:
    """The input weights and bias of the pre-activation ``mlp.hook_pre`` reports: the gate's
    (``W_gate``) in a gated MLP, whose non-linearity decides whether the neuron fires, else W_in's."""
    m = "gate" if weights.cfg.gated_mlp else "in"
    return (weights.get(f"blocks.{layer}.mlp.W_{m}")[:, neuron].double(),
            float(weights.get(f"blocks.{layer}.mlp.b_{m}")[neuron]))
