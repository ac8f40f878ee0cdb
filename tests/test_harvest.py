"""The harvester: readers of one dataset share one forward pass with the union of their hooks,
equal to running it directly, and the pass is freed after its last reader."""

from __future__ import annotations

import pytest
import torch

from poslens.harvest import Harvest, Harvester
from poslens.models import Runner, load_weights
from poslens.testing import random_checkpoint


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return Runner(load_weights(str(random_checkpoint(tmp_path_factory.mktemp("h") / "m", seed=3))))


def test_readers_of_one_dataset_share_one_pass_and_it_is_freed_after_the_last(runner):
    built = []
    toks = torch.randint(0, runner.cfg.d_vocab, (2, 16), generator=torch.Generator().manual_seed(0))

    def make(owner):
        built.append(owner)
        return {"tokens": toks}

    h = Harvester(lambda: runner, owner="ctx")
    h.plan([Harvest("toks", make, ("blocks.0.attn.hook_pattern",)),
            Harvest("toks", make, ("blocks.1.hook_resid_post",)),
            Harvest("zeros", lambda _: {"embed": torch.zeros(1, 8, runner.cfg.d_model)}, ("blocks.0.hook_resid_post",))])
    assert h.hooks("toks") == {"blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"}
    a = h.activations("toks")
    assert h.activations("toks") is a and built == ["ctx"] and len(h.passes) == 1
    direct = runner.run(toks, hooks=["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"])
    for k in ("blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"):
        torch.testing.assert_close(a[k], direct[k])
    h.release(["toks"])
    assert h.held() == ["toks"]  # one reader left
    h.release(["toks"])
    assert h.held() == []
    assert h.activations("zeros")["blocks.0.hook_resid_post"].shape == (1, 8, runner.cfg.d_model)
    assert [p["dataset"] for p in h.passes] == ["toks", "zeros"]
    with pytest.raises(KeyError, match="no forward pass planned for 'nope'"):
        h.activations("nope")
