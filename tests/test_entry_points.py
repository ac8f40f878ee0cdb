"""Every analysis entry point takes a model the way ``load_weights`` does: Weights, a name or a checkpoint path."""

from __future__ import annotations

import importlib

import pytest

from poslens.errors import InvalidInputError, UnknownModelError
from poslens.models import Runner, load_weights

# (module, function, positional arguments after the model)
ENTRY_POINTS = [
    ("helix", "helix", ()),
    ("heads", "duplicate_heads", ()),
    ("neurons", "duplicate_neurons", ()),
    ("word_index", "word_index", ()),
    ("twisted_pair", "twisted_pair", ()),
    ("position_probe", "position_probe", ()),
    ("rotary", "rotary_usage", ()),
    ("sinks", "attention_sinks", ()),
    ("geometry.spectra", "weight_spectra", ()),
    ("geometry.spheres", "sphere_overlap", ()),
    ("geometry.subspaces", "hidden_subspaces", ()),
    ("geometry.logit_lens", "logit_lens", ()),
    ("causal.named", "ablate_named", ()),
    ("causal.named", "patch_prompts", ("When Mary and John", "When John and Mary", "logit-diff: Mary| John")),
    ("causal.question_duplicate", "duplicate_neuron_ablation", ()),
    ("causal.question_helix", "helix_ablation", ()),
    ("causal.question_word_index", "word_index_ablation", ()),
]


def _fn(module: str, name: str):
    return getattr(importlib.import_module(f"poslens.analyses.{module}"), name)


@pytest.mark.parametrize("module, name, args", ENTRY_POINTS, ids=[e[1] for e in ENTRY_POINTS])
def test_a_checkpoint_path_is_opened_like_load_weights_opens_it(module, name, args, tmp_path):
    # A missing directory gets load_weights' own error: the path reached it (it had been
    # used as Weights, an AttributeError on 'str'/'PosixPath', or refused as "not a Runner").
    with pytest.raises(UnknownModelError, match="does not exist"):
        _fn(module, name)(tmp_path / "no-model", *args)
    with pytest.raises(UnknownModelError, match="unknown model 'no-such-model'"):
        _fn(module, name)("no-such-model", *args)


@pytest.mark.parametrize("module, name, args", ENTRY_POINTS, ids=[e[1] for e in ENTRY_POINTS])
def test_something_that_is_no_model_is_one_clear_error(module, name, args):
    with pytest.raises(InvalidInputError, match=f"{name} takes .*the model's Weights, a model name or a checkpoint "
                                                "directory; got int"):
        _fn(module, name)(42, *args)


def test_a_model_name_gives_the_result_its_weights_give():
    from poslens.analyses.geometry.spectra import weight_spectra
    from poslens.analyses.heads import duplicate_heads
    from poslens.analyses.sinks import attention_sinks

    w = load_weights("tiny")
    small = dict(layers=[0], n_seq=2, seq_len=16, positional=False)
    assert duplicate_heads("tiny", **small).to_json() == duplicate_heads(w, **small).to_json()
    assert weight_spectra("tiny", per_head=False).to_json() == weight_spectra(w, per_head=False).to_json()
    sinks = dict(n_seq=2, seq_len=8)
    assert attention_sinks("tiny", **sinks).to_json() == attention_sinks(Runner(w), **sinks).to_json()
