"""Causal checks: ablation and activation patching of heads, neurons and residual directions.

* :mod:`.intervention`: :class:`Intervention` (plain data: zero / mean / resample ablation of
  a head, a neuron or a direction, at chosen positions, against a named reference
  dataset); :mod:`.run` compiles them into the runner's editing hooks and runs them:
  several compose, and many variants run as copies of the input in one batched pass.
* :mod:`.metrics`: what to measure during the pass (logit difference, a neuron's
  activation, a probe's logit, the loss, previous-token attention, any callable).
* :mod:`.patching`: activation patching between a clean and a corrupted input, swept over
  layers x positions (residual stream, :mod:`.suffix` recomputes only what a patch can
  change) or over heads; normalised 0 = corrupted, 1 = clean.
* :mod:`.ablate`: an ablation's effect against random ablations of the same size;
  :mod:`.baselines` draws them.
* The seeds' causal questions: :mod:`.question_duplicate` (duplicate heads -> duplicate
  neurons), :mod:`.question_helix` (W_pos's top-3 subspace), :mod:`.question_word_index`
  (word-index probe directions).

>>> from poslens.analyses.causal import ablate_head, run_with, patch_sweep, logit_diff
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .ablate import AblationResult, ablation_effect
    from .intervention import Intervention, ablate_direction, ablate_head, ablate_neuron
    from .metrics import (Metric, custom, direction_readout, logit_diff, masked_neuron_means, neuron_activation,
                          next_token_loss, previous_token_attention)
    from .options import HelixAblationOptions
    from .patching import PatchResult, head_sweep, patch_sweep
    from .run import compile_interventions, run_variants, run_with

__getattr__ = exports(__name__, {
    ".ablate": ("AblationResult", "ablation_effect"),
    ".intervention": ("Intervention", "ablate_direction", "ablate_head", "ablate_neuron"),
    ".metrics": ("Metric", "custom", "direction_readout", "logit_diff", "masked_neuron_means", "neuron_activation",
                 "next_token_loss", "previous_token_attention"),
    ".options": ("HelixAblationOptions",),
    ".patching": ("PatchResult", "head_sweep", "patch_sweep"),
    ".run": ("compile_interventions", "run_variants", "run_with"),
})

__all__ = [
    "AblationResult", "HelixAblationOptions", "Intervention", "Metric", "PatchResult", "ablate_direction",
    "ablate_head", "ablate_neuron", "ablation_effect", "compile_interventions", "custom", "direction_readout", "head_sweep", "logit_diff",
    "masked_neuron_means", "neuron_activation", "next_token_loss", "patch_sweep", "previous_token_attention",
    "run_variants", "run_with",
]
