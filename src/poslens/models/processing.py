"""Weight processing as short pure functions: each takes Weights (or, as the analyses do, a model
name or checkpoint directory) and returns new Weights.

Each step is exact for the model's outputs (up to a per-position constant on logits for
``center_unembed``) and is recorded in ``Weights.processing``. Steps are lazy: a processed
tensor is computed when first read (:class:`~poslens.models.weights.Deferred`), so
processing a whole model and reading one layer reads and computes that layer only. Where a tensor a step needs
is missing (a partial checkpoint), the step leaves that part untouched and says so in the
recorded step name, e.g. ``fold_layer_norm[ln2 kept: blocks.0.mlp.W_in missing]``.

>>> from poslens.models import load_weights, processing as P
>>> w = P.fold_layer_norm(load_weights("tiny"))
>>> w = P.center_writing_weights(w)
>>> w.processing
('fold_layer_norm', 'center_writing_weights')
"""

from __future__ import annotations

import numbers

import torch

from ..errors import InvalidInputError
from .weights import Deferred, Weights, as_weights


def _step(name: str, notes: list[str]) -> str:
    return f"{name}[{'; '.join(notes)}]" if notes else name


def _missing(w: Weights, names: list[str]) -> str | None:
    return next((n for n in names if not w.has(n)), None)


def fold_layer_norm(w: Weights, center_reading: bool = True) -> Weights:
    """Fold each LayerNorm's weight and bias into the matrices that read from it.

    Afterwards every LayerNorm has weight 1 and bias 0 (it only centres and scales), as in
    TransformerLens's ``fold_ln``. With ``center_reading`` the reading matrices are also
    centred over d_model, which is exact because their input is already centred.
    """
    w = as_weights(w, "fold_layer_norm")
    cfg = w.cfg
    if cfg.normalization != "LN":
        return w.replace({}, "fold_layer_norm[no LayerNorm]")
    if not cfg.pre_norm:  # post-LN (OPT-350m): the LayerNorms read block outputs, not the matrices' inputs
        return w.replace({}, "fold_layer_norm[skipped: post-LayerNorm blocks]")
    up: dict[str, torch.Tensor] = {}
    notes: list[str] = []

    def fold(ln: str, W_name: str, b_name: str, d_axis: int) -> None:
        def W_new() -> torch.Tensor:
            W = w.get(W_name)
            shape = [1] * W.dim()
            shape[d_axis] = -1
            out = W * w.get(ln + ".w").reshape(shape)
            return out - out.mean(dim=d_axis, keepdim=True) if center_reading else out

        def b_new() -> torch.Tensor:
            W, gb = w.get(W_name), w.get(ln + ".b")
            return w.get(b_name) + (torch.tensordot(gb, W, dims=([0], [d_axis])) if W.dim() == 2
                                    else torch.einsum("d,hdk->hk", gb, W))

        up[W_name], up[b_name] = Deferred(W_new), Deferred(b_new)
        up[ln + ".w"], up[ln + ".b"] = Deferred(lambda: torch.ones(cfg.d_model)), Deferred(lambda: torch.zeros(cfg.d_model))

    def fold_all(what: str, ln: str, readers: list[tuple[str, str, int]]) -> None:
        """Fold ``ln`` into every reader, or into none (noting why) when one of them is missing."""
        miss = _missing(w, [n for W_name, b_name, _ in readers for n in (W_name, b_name)] + [ln + ".w", ln + ".b"])
        if miss:
            notes.append(f"{what} kept: {miss} missing")
        else:
            for reader in readers:
                fold(ln, *reader)

    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        fold_all(f"ln1 of layer {l}", p + "ln1", [(p + f"attn.W_{x}", p + f"attn.b_{x}", 1) for x in "QKV"])
        fold_all(f"ln2 of layer {l}", p + "ln2", [(p + "mlp.W_in", p + "mlp.b_in", 0)])
    fold_all("ln_final", "ln_final", [("unembed.W_U", "unembed.b_U", 0)])
    return w.replace(up, _step("fold_layer_norm", notes))


def center_writing_weights(w: Weights) -> Weights:
    """Remove the mean over d_model from everything that writes to the residual stream.

    Exact because every reader of the residual stream is a LayerNorm, which subtracts that
    mean anyway. Needs LayerNorm; skipped (and recorded) for models without it.
    """
    w = as_weights(w, "center_writing_weights")
    cfg = w.cfg
    if cfg.normalization != "LN":
        return w.replace({}, "center_writing_weights[skipped: no LayerNorm]")
    if not (cfg.pre_norm and cfg.final_norm):  # some reader of the residual stream is not a LayerNorm
        return w.replace({}, "center_writing_weights[skipped: post-LayerNorm blocks]")
    writers = ["embed.W_E"] + (["pos_embed.W_pos"] if cfg.positional == "learned" else [])
    for l in range(cfg.n_layers):
        writers += [f"blocks.{l}.attn.W_O", f"blocks.{l}.attn.b_O", f"blocks.{l}.mlp.W_out", f"blocks.{l}.mlp.b_out"]
    up, skipped = {}, []

    def centred(n: str) -> Deferred:
        return Deferred(lambda: (t := w.get(n)) - t.mean(dim=-1, keepdim=True))

    for n in writers:
        if w.has(n):
            up[n] = centred(n)
        else:
            skipped.append(n)
    return w.replace(up, _step("center_writing_weights", [f"{len(skipped)} missing tensors kept"] if skipped else []))


def center_unembed(w: Weights) -> Weights:
    """Subtract the mean over the vocabulary from W_U and b_U (logits shift by a constant per position)."""
    w = as_weights(w, "center_unembed")
    if not w.has("unembed.W_U"):
        return w.replace({}, "center_unembed[skipped: W_U missing]")
    return w.replace({"unembed.W_U": Deferred(lambda: (W := w.get("unembed.W_U")) - W.mean(dim=-1, keepdim=True)),
                      "unembed.b_U": Deferred(lambda: (b := w.get("unembed.b_U")) - b.mean())}, "center_unembed")


def fold_value_biases(w: Weights) -> Weights:
    """Move b_V into b_O: attention weights sum to one, so each head adds exactly b_V @ W_O."""
    w = as_weights(w, "fold_value_biases")
    cfg = w.cfg
    up = {}

    def moved(p: str) -> tuple[Deferred, Deferred]:
        return (Deferred(lambda: w.get(p + "b_O") + torch.einsum("hk,hkd->d", w.get(p + "b_V"), w.get(p + "W_O"))),
                Deferred(lambda: torch.zeros_like(w.get(p + "b_V"))))

    for l in range(cfg.n_layers):
        p = f"blocks.{l}.attn."
        up[p + "b_O"], up[p + "b_V"] = moved(p)
    return w.replace(up, "fold_value_biases")


def randomize(w: Weights, seed: int = 0) -> Weights:
    """A null model: every tensor redrawn, independently, from a Gaussian with that tensor's own
    mean and standard deviation (a constant tensor, such as a fresh LayerNorm weight, stays constant).

    Shapes, scales and the architecture are kept; everything learned is gone. What an analysis
    finds on it, it finds without a trained mechanism: the word-index probe reads the sentence
    index of such a gpt2-small-shaped model well above its position baseline, for instance. Lazy
    like every step (only the tensors read are drawn, each from its own seeded generator, so the
    draw does not depend on reading order); a tied unembedding is drawn apart from W_E.

    >>> from poslens.models import load_weights
    >>> r = randomize(load_weights("tiny"), seed=1)
    >>> r.processing, r.get("pos_embed.W_pos").shape == load_weights("tiny").get("pos_embed.W_pos").shape
    (('randomize[seed=1]',), True)
    """
    w = as_weights(w, "randomize")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:  # as random=SEED:MODEL takes it
        raise InvalidInputError(f"randomize's seed is a whole number >= 0; got {seed!r}")

    def drawn(i: int, n: str) -> Deferred:
        def draw() -> torch.Tensor:
            t = w.get(n).float()
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + i)
            noise = torch.randn(t.shape, generator=g)
            return t.mean() + t.std(correction=0) * noise if t.numel() > 1 else t.clone()

        return Deferred(draw)

    up = {n: drawn(i, n) for i, n in enumerate(w.names()) if w.has(n)}
    out = w.replace(up, f"randomize[seed={int(seed)}]")
    out._label = f"{w.label} (random weights, seed {int(seed)})"
    return out


def process(w: Weights, fold_ln: bool = True, center_writing: bool = True,
            center_unembedding: bool = True, fold_value_bias: bool = True) -> Weights:
    """The TransformerLens default processing, each step optional."""
    w = as_weights(w, "process")
    if fold_ln:
        w = fold_layer_norm(w)
    if center_writing:
        w = center_writing_weights(w)
    if center_unembedding:
        w = center_unembed(w)
    if fold_value_bias:
        w = fold_value_biases(w)
    return w
