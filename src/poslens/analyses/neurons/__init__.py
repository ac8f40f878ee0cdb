"""MLP neurons that read the positional signal of a duplicate-token head (the duplicate-token post).

A duplicate-token head at position q averages the residual stream over the earlier copies
of the current token, so besides the token it carries the *positions* of those copies.
The seed follows that positional signal into layer 0's MLP, step by step; every step is
an option here, recorded in the result:

1. **Processing** (``fold_ln``, ``center``): fold the LayerNorms into the matrices that
   read from them, and centre W_E and W_pos over d_model (exact under LayerNorm; the
   reading under which the seed's scale formula holds).
2. **LayerNorm scale** of layer 0 for token t at position i: exact ``sqrt(d_model) /
   |c(W_E[t] + W_pos[i])|`` against the seed's ``sqrt(d_model) / sqrt(|W_E[t]|² +
   |W_pos[i]|²)`` (cross term dropped) and against the same with |W_pos[i]| replaced by
   its mean beyond position ``pos_norm_from`` (the seed's 3.35), with measured errors.
3. **PVO** of head h: ``W_pos · W_V^h · W_O^h · W_in`` ``[n_ctx, d_mlp]``; each neuron's
   norm over positions (the seed's 48x64 grid for 3072 neurons), the neurons above
   ``threshold``, and per neuron the PVO curve (times the LayerNorm multiplier chosen
   by ``ln_scale``, over the MLP LayerNorm scale) with a linear fit against position
   (slope, zero crossing, R²).
4. **Decomposition** of one neuron's pre-activation over a text, exact: each head's
   contribution (split into its positional part, the rest of its input, and its value
   bias), the attention bias, the direct path (W_pos and W_E) and the neuron's bias,
   with the MLP LayerNorm divided out at its measured per-position scale. Then the
   seed's approximations against it: heads other than the duplicate and uniform heads
   ≈ their PVO at the current position; a uniform head ≈ the mean PVO over earlier
   positions; the duplicate head ≈ the mean PVO over the copies of the current token;
   the MLP LayerNorm ≈ one constant scale; the layer-0 LayerNorm ≈ the seed's formula.
   Finally the predicted extra activation of a repeated token as a function of the mean
   distance to its earlier copies, against the measured one.
5. **Top activating examples** of the neuron over a corpus, as an HTML page.

The package: :mod:`.options` (:class:`Options`), :mod:`.premise` (where the analysis applies,
the tensors it reads), :mod:`.layernorm` (step 2), :mod:`.pvo` (step 3 and the combined
curve), :mod:`.decompose` (step 4), :mod:`.examples` (step 5), :mod:`.analysis`
(:func:`duplicate_neurons`, all of them), :mod:`.result` (with its summary lines). The post's
GPT-2 small figures are in :mod:`poslens.claims.duplicate_heads_post`; figures in
:mod:`poslens.viz.duplicate`.

>>> from poslens.models import load_weights
>>> from poslens.analyses.neurons import duplicate_neurons
>>> r = duplicate_neurons(load_weights("gpt2"), head=(0, 5), neuron=1168)    # doctest: +SKIP
>>> r.fits["1168"].zero_crossing, r.decomposition.extra_vs_distance.fit_measured  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .analysis import duplicate_neurons
    from .decompose import decompose_neuron
    from .examples import top_activating_examples
    from .layernorm import LN_SCALES, layernorm_scale_study, ln1_multiplier_curve, pos_norm_const, rel_error
    from .options import Options
    from .premise import first_layers, layer_names, neuron_read, not_applicable_reason, token_path_names
    from .pvo import combined_positional, grid_shape, linear_fit, neuron_ov, pvo_matrix
    from .result import DupNeuronsResult, NeuronFit, summarize

__getattr__ = exports(__name__, {
    ".analysis": ("duplicate_neurons",),
    ".decompose": ("decompose_neuron",),
    ".examples": ("top_activating_examples",),
    ".layernorm": ("LN_SCALES", "layernorm_scale_study", "ln1_multiplier_curve", "pos_norm_const", "rel_error"),
    ".options": ("Options",),
    ".premise": ("first_layers", "layer_names", "neuron_read", "not_applicable_reason", "token_path_names"),
    ".pvo": ("combined_positional", "grid_shape", "linear_fit", "neuron_ov", "pvo_matrix"),
    ".result": ("DupNeuronsResult", "NeuronFit", "summarize"),
})

__all__ = [
    "DupNeuronsResult", "LN_SCALES", "NeuronFit", "Options", "combined_positional", "decompose_neuron", "duplicate_neurons",
    "first_layers", "grid_shape", "layer_names", "layernorm_scale_study", "linear_fit", "ln1_multiplier_curve",
    "neuron_ov", "neuron_read", "not_applicable_reason", "pos_norm_const", "pvo_matrix", "rel_error", "summarize",
    "token_path_names", "top_activating_examples",
]
