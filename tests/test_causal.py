"""Causal checks: each intervention against hand-computed expectations, batched variants, composition,
patching on a planted path (exact predictions), suffix == full sweeps, baselines and bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from poslens.analyses.causal import (
    ablate_direction,
    ablate_head,
    ablate_neuron,
    ablation_effect,
    custom,
    direction_readout,
    head_sweep,
    logit_diff,
    neuron_activation,
    patch_sweep,
    run_variants,
    run_with,
)
from poslens.analyses.causal.baselines import against, compare, random_head_sets, random_neurons, random_subspace, spread
from poslens.analyses.causal.intervention import Intervention, orthonormal_basis
from poslens.analyses.causal.metrics import MetricStore, next_token_loss
from poslens.errors import InvalidInputError, PoslensError, UnknownHookError
from poslens.models import Runner, Weights, load_weights
from poslens.testing import random_state_dict, small_config
from poslens.testing.causal import planted_path_checkpoint


@pytest.fixture(scope="module")
def w():
    cfg = small_config(n_layers=2, n_heads=4, d_model=32, n_ctx=24, d_vocab=64)
    return Weights.from_state_dict(random_state_dict(cfg, seed=3), cfg, label="random")


@pytest.fixture(scope="module")
def runner(w):
    return Runner(w, dtype="float64")


@pytest.fixture(scope="module")
def toks():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 64, (5, 12), generator=g)


@pytest.fixture(scope="module")
def ref():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 64, (7, 16), generator=g)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_path_checkpoint(tmp_path_factory.mktemp("pp") / "model")


def _clean(runner, toks, hooks):
    return runner.run(toks, hooks=hooks)


# ----------------------------------------------------------------------------- interventions


def test_zero_head_matches_hand_computation(runner, w, toks):
    z, out = "blocks.1.attn.hook_z", "blocks.1.hook_attn_out"
    clean = _clean(runner, toks, [z, out])
    got = run_with(runner, toks, [ablate_head(1, [2], positions=[3, -1])], hooks=[z, out])
    W_O = w.get("blocks.1.attn.W_O").double()
    expect = clean[out].clone()
    for p in (3, 11):
        expect[:, p] -= clean[z][:, p, 2] @ W_O[2]
        assert torch.equal(got[z][:, p, 2], torch.zeros_like(got[z][:, p, 2]))
    torch.testing.assert_close(got[out], expect, atol=1e-12, rtol=0)
    keep = [p for p in range(12) if p not in (3, 11)]
    assert torch.equal(got[z][:, keep], clean[z][:, keep])


def test_mean_head_per_position_and_pooled(runner, toks, ref):
    z = "blocks.0.attn.hook_z"
    zr = _clean(runner, ref, [z])[z][:, :12, 1]  # reference positions align with the input's
    got = run_with(runner, toks, [ablate_head(0, 1, "mean", reference="ref")], references={"ref": ref}, hooks=[z])
    torch.testing.assert_close(got[z][:, :, 1], zr.mean(0).expand(5, 12, -1), atol=1e-12, rtol=0)
    pooled = run_with(runner, toks, [ablate_head(0, 1, "mean", reference="ref", mean_over="all")],
                      references={"ref": ref}, hooks=[z])
    full = _clean(runner, ref, [z])[z][:, :, 1]
    torch.testing.assert_close(pooled[z][:, :, 1], full.mean((0, 1)).expand(5, 12, -1), atol=1e-12, rtol=0)


def test_resample_head_takes_another_rows_activation(runner, toks):
    z = "blocks.0.attn.hook_z"
    clean = _clean(runner, toks, [z])[z][:, :, 3]
    got = run_with(runner, toks, [ablate_head(0, 3, "resample", seed=4)], hooks=[z])[z][:, :, 3]
    for b in range(5):
        src = [r for r in range(5) if torch.equal(got[b], clean[r])]
        assert src and b not in src  # another sequence, same positions
    again = run_with(runner, toks, [ablate_head(0, 3, "resample", seed=4)], hooks=[z], batch_size=2)[z][:, :, 3]
    assert torch.equal(got, again)  # chunking the batch does not change which row each row is resampled from


def test_zero_and_mean_neuron(runner, w, toks, ref):
    post, out = "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out"
    clean = _clean(runner, toks, [post, out])
    got = run_with(runner, toks, [ablate_neuron(0, [5, 9], positions=[0, 4])], hooks=[post, out])
    W_out = w.get("blocks.0.mlp.W_out").double()
    expect = clean[out].clone()
    for p in (0, 4):
        expect[:, p] -= clean[post][:, p, [5, 9]] @ W_out[[5, 9]]
    torch.testing.assert_close(got[out], expect, atol=1e-12, rtol=0)
    mean = run_with(runner, toks, [ablate_neuron(0, 5, "mean", reference="ref")], references={"ref": ref}, hooks=[post])
    rp = _clean(runner, ref, [post])[post][:, :12, 5].mean(0)
    torch.testing.assert_close(mean[post][:, :, 5], rp.expand(5, 12), atol=1e-12, rtol=0)


def test_direction_zero_mean_resample_and_gain(runner, toks, ref):
    h = "blocks.1.hook_resid_pre"
    g = torch.Generator().manual_seed(5)
    V = torch.randn(2, 32, generator=g, dtype=torch.float64)
    U = orthonormal_basis(V)
    x = _clean(runner, toks, [h])[h]
    Pj = U.T @ U
    zero = run_with(runner, toks, [ablate_direction(h, V)], hooks=[h])[h]
    torch.testing.assert_close(zero, x - x @ Pj, atol=1e-10, rtol=0)
    half = run_with(runner, toks, [ablate_direction(h, V, gain=0.5)], hooks=[h])[h]
    torch.testing.assert_close(half, x - 0.5 * x @ Pj, atol=1e-10, rtol=0)
    xr = _clean(runner, ref, [h])[h][:, :12]
    mean = run_with(runner, toks, [ablate_direction(h, V, "mean", reference="ref")], references={"ref": ref}, hooks=[h])[h]
    torch.testing.assert_close(mean, x - (x - xr.mean(0)) @ Pj, atol=1e-10, rtol=0)
    res = run_with(runner, toks, [ablate_direction(h, V, "resample", reference="ref", seed=2)], references={"ref": ref},
                   hooks=[h])[h]
    # each row's coordinates in the subspace are some reference row's; the rest is untouched
    coords = res @ U.T
    for b in range(5):
        assert any(torch.allclose(coords[b], xr[r] @ U.T, atol=1e-10) for r in range(7))
    torch.testing.assert_close(res - res @ Pj, x - x @ Pj, atol=1e-10, rtol=0)


def test_patch_kind_takes_the_aligned_reference_row(runner, toks):
    other = toks.flip(0)
    h, z = "blocks.1.hook_resid_pre", "blocks.0.attn.hook_z"
    a = _clean(runner, other, [h, z])
    b = _clean(runner, toks, [h, z])
    got = run_with(runner, toks, [ablate_direction(h, torch.eye(32, dtype=torch.float64), "patch", positions=[3],
                                                   reference="A")], references={"A": other}, hooks=[h])[h]
    torch.testing.assert_close(got[:, 3], a[h][:, 3], atol=1e-10, rtol=0)
    keep = [p for p in range(12) if p != 3]
    torch.testing.assert_close(got[:, keep], b[h][:, keep], atol=1e-10, rtol=0)
    zz = run_with(runner, toks, [ablate_head(0, 2, "patch", reference="A")], references={"A": other}, hooks=[z])[z]
    assert torch.equal(zz[:, :, 2], a[z][:, :, 2]) and torch.equal(zz[:, :, 1], b[z][:, :, 1])
    with pytest.raises(InvalidInputError, match="row by row"):
        run_with(runner, toks, [ablate_head(0, 2, "patch", reference="A")], references={"A": other[:2]}, hooks=[z])


def test_pos_embed_direction_leaves_weights_alone(runner, w, toks):
    W0 = w.W_pos.clone()
    U = torch.eye(32, dtype=torch.float64)[:3]
    got = run_with(runner, toks, [ablate_direction("hook_pos_embed", U)], hooks=["hook_pos_embed"])["hook_pos_embed"]
    assert torch.equal(got[..., :3], torch.zeros_like(got[..., :3]))
    assert torch.equal(w.W_pos, W0)
    again = runner.run(toks, hooks=["hook_pos_embed"])["hook_pos_embed"]
    torch.testing.assert_close(again[0], W0[:12].double(), atol=1e-7, rtol=0)


def test_interventions_on_one_hook_apply_in_order(runner, toks, ref):
    post = "blocks.0.mlp.hook_post"
    z, m = ablate_neuron(0, 2), ablate_neuron(0, 2, "mean", reference="ref")
    a = run_with(runner, toks, [z, m], references={"ref": ref}, hooks=[post])[post][..., 2]
    b = run_with(runner, toks, [m, z], references={"ref": ref}, hooks=[post])[post][..., 2]
    assert torch.equal(b, torch.zeros_like(b))
    assert not torch.equal(a, b) and torch.allclose(a, a[0].expand_as(a))  # the per-position mean, same for every row


def test_variants_in_one_pass_equal_separate_runs(runner, toks, ref):
    variants = [[], [ablate_head(0, [0, 1])], [ablate_neuron(1, 7, "mean", reference="ref"), ablate_head(1, 3, "resample")],
                [ablate_direction("blocks.1.hook_resid_mid", torch.ones(32))]]
    m = neuron_activation(1, [3, 7])
    store = MetricStore([m], len(variants) * 5, 5)
    run_variants(runner, toks, variants, store.readers(), references={"ref": ref}, batch_size=7)
    got = store.by_variant(len(variants))[m.name]
    for v, ivs in enumerate(variants):
        act = run_with(runner, toks, ivs, references={"ref": ref}, hooks=["blocks.1.mlp.hook_post"])["blocks.1.mlp.hook_post"]
        np.testing.assert_allclose(got[v], act[..., [3, 7]].mean(1).numpy(), atol=1e-12)


def test_intervention_is_plain_serialisable_data():
    iv = ablate_direction("hook_pos_embed", torch.eye(8)[:2], "mean", positions=[-1], reference="ref", source="demo")
    d = json.loads(json.dumps(dataclasses.asdict(iv.describe())))
    assert d["kind"] == "mean" and d["target"] == "direction" and d["positions"] == [-1] and d["reference"] == "ref"
    assert d["basis_shape"] == [2, 8] and len(d["basis"]) == 2
    assert iv.describe().intervention() == iv
    assert iv.describe(full=False).basis is None and iv.describe(full=False).basis_sha256


# ----------------------------------------------------------------------------- planted path: exact predictions


def test_planted_head_sweep_recovers_the_path_exactly(planted):
    runner = Runner(load_weights(str(planted.path)), dtype="float64")
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 24, (4, 20), generator=g), torch.randint(0, 24, (4, 20), generator=g)
    m = direction_readout(planted.hook, planted.readout)
    r = head_sweep(runner, clean, corrupt, m)
    mc, mx = planted.metric_value(clean).mean(), planted.metric_value(corrupt).mean()
    assert abs(r.clean_metric - mc) < 1e-6 and abs(r.corrupted_metric - mx) < 1e-6
    raw = np.array(r.raw)
    expect = np.full_like(raw, mx)
    expect[0, planted.head] = mc  # patching the planted head in moves the readout to its clean value
    assert np.abs(raw - expect).max() < 1e-6
    norm = np.array(r.normalized)
    assert np.argwhere(np.abs(norm) > 1e-6).tolist() == [[0, planted.head]]
    noise = head_sweep(runner, clean, corrupt, m, mode="noise")  # patch corrupted into clean: 0 at the path
    assert abs(np.array(noise.normalized)[0, planted.head]) < 1e-6 and np.abs(np.array(noise.normalized)[1] - 1).max() < 1e-6
    # every other head is at 1 (unaffected) when noising: the largest effect is still the path's
    assert (noise.top[0].layer, noise.top[0].head) == (0, planted.head) and (r.top[0].layer, r.top[0].head) == (0, planted.head)


@pytest.mark.parametrize("method", ["suffix", "full"])
def test_planted_resid_sweep_matches_prediction(planted, method):
    runner = Runner(load_weights(str(planted.path)), dtype="float64")
    g = torch.Generator().manual_seed(1)
    clean, corrupt = torch.randint(0, 24, (3, 16), generator=g), torch.randint(0, 24, (3, 16), generator=g)
    m = direction_readout(planted.hook, planted.readout)
    r = patch_sweep(runner, clean, corrupt, m, method=method)
    v = np.asarray(planted.values)
    # layer 0, position k: the head averages values over 16 positions, so the readout moves by gain * diff / 16
    pred0 = planted.metric_value(corrupt).mean() + planted.gain * (v[clean.numpy()] - v[corrupt.numpy()]).mean(0) / 16
    raw = np.array(r.raw)
    assert np.abs(raw[0] - pred0).max() < 1e-6
    norm = np.array(r.normalized)
    assert abs(norm[1, -1] - 1) < 1e-9 and np.abs(norm[1, :-1]).max() < 1e-9  # after layer 0 only the last position
    assert r.method == method


def test_planted_ablation_effect_against_random_heads(planted):
    runner = Runner(load_weights(str(planted.path)), dtype="float64")
    g = torch.Generator().manual_seed(2)
    toks, ref = torch.randint(0, 24, (6, 10), generator=g), torch.randint(0, 24, (9, 10), generator=g)
    m = direction_readout(planted.hook, planted.readout)
    r = ablation_effect(runner, toks, [ablate_head(0, planted.head)], [m], n_baseline=3)
    clean = planted.metric_value(toks).mean()
    e = r.effects[m.name]
    assert abs(r.clean[m.name] - clean) < 1e-9 and abs(e.effect + clean) < 1e-9  # zero ablation removes it all
    assert max(abs(x) for x in e.baseline.draws) < 1e-9 and e.baseline.n == 3
    assert all(planted.head not in d[0].index for d in r.baseline.draws)
    # mean ablation against a reference: the head's output becomes its reference mean at the last position
    rm = ablation_effect(runner, toks, [ablate_head(0, planted.head, "mean", reference="ref")], [m],
                         references={"ref": ref}, n_baseline=2)
    assert abs(rm.ablated[m.name] - planted.head_output(ref)[:, 9].mean()) < 1e-9
    rs = ablation_effect(runner, toks, [ablate_head(0, planted.head, "resample", reference="ref", seed=1)], [m],
                         references={"ref": ref}, n_baseline=2)
    outs = planted.head_output(ref)[:, 9]
    per_row = run_with(runner, toks, [ablate_head(0, planted.head, "resample", reference="ref", seed=1)],
                       references={"ref": ref}, hooks=[planted.hook])[planted.hook][:, -1] @ torch.tensor(planted.readout,
                                                                                                       dtype=torch.float64)
    assert all(np.isclose(outs, x, atol=1e-9).any() for x in per_row.numpy())
    assert abs(rs.ablated[m.name] - per_row.mean().item()) < 1e-9


# ----------------------------------------------------------------------------- suffix == full


@pytest.mark.parametrize("hook", ["resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"])
def test_suffix_equals_full(runner, w, toks, hook):
    corrupt = toks.flip(0)
    metrics = [logit_diff(w, good=3, bad=7), neuron_activation(1, 5, positions=[-2]),
               direction_readout("blocks.1.hook_resid_pre", torch.linspace(-1, 1, 32), positions=[8, 10])]
    for m in metrics:
        a = patch_sweep(runner, toks, corrupt, m, hook=hook, method="suffix", positions=[0, 4, 9, 11])
        b = patch_sweep(runner, toks, corrupt, m, hook=hook, method="full", positions=[0, 4, 9, 11])
        np.testing.assert_allclose(a.raw, b.raw, atol=1e-10)
        assert a.skipped == b.skipped


def test_skipped_cells_cannot_move_the_metric(runner, toks):
    m = direction_readout("blocks.0.hook_resid_post", torch.ones(32), positions=[5])
    r = patch_sweep(runner, toks, toks.flip(0), m, method="full")
    sk = np.array(r.skipped)
    assert sk[1].all() and sk[0, 6:].all() and not sk[0, :6].any()  # layer 1 is after the metric; positions > 5 too
    assert np.allclose(np.array(r.raw)[sk], r.corrupted_metric)


# ----------------------------------------------------------------------------- baselines


def test_baseline_helpers():
    c = compare(-1.0, [0.0, 0.2, -0.2])
    assert c.baseline.mean == pytest.approx(0.0) and c.z == pytest.approx(-1.0 / 0.2)
    assert c.share_as_large == 0.0 and spread([]).n == 0
    sets = random_head_sets(8, 2, exclude=[1, 5], n_draws=6, seed=0)
    assert len({tuple(s) for s in sets}) == 6 and all(not {1, 5} & set(s) for s in sets)
    assert sets == random_head_sets(8, 2, exclude=[1, 5], n_draws=6, seed=0)
    ns = random_neurons(100, 4, exclude=range(50), n_draws=5, seed=1)
    assert all(min(s) >= 50 and len(set(s)) == 4 for s in ns)
    R = random_subspace(16, 3, seed=2)
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.equal(R, random_subspace(16, 3, seed=2)) and not torch.equal(R, random_subspace(16, 3, seed=3))


def test_equal_baseline_draws_have_no_spread():
    # one disjoint pair of heads left in a 4-head layer: ten equal draws, whose float mean is off by an ulp
    c = compare(0.0074, [1.3624609538487027] * 10)
    assert c.baseline.std == 0.0 and math.isnan(c.z)
    assert math.isnan(compare(0.5, [0.2]).z)  # one draw: no spread either
    assert "no spread, so no z" in against(c.baseline, c.z, "random")


def test_a_baseline_counts_each_random_counterpart_once(runner, toks):
    # two of layer 0's four heads leave one other pair: asked for ten draws, the baseline is that pair once
    r = ablation_effect(runner, toks, [ablate_head(0, [0, 2])], [next_token_loss(toks)], n_baseline=10)
    assert r.baseline.n_draws == 1 and [d[0].index for d in r.baseline.draws] == [[1, 3]]
    assert r.effects["loss"].baseline.n == 1
    assert "only 1 different random counterpart exists (asked for 10)" in " ".join(r.notes)
    r3 = ablation_effect(runner, toks, [ablate_head(0, [0])], [next_token_loss(toks)], n_baseline=10)
    assert r3.baseline.n_draws == 3 and len({tuple(d[0].index) for d in r3.baseline.draws}) == 3


def test_a_baseline_draws_as_many_different_heads_and_neurons_as_asked(runner):
    from poslens.analyses.causal.ablate import baseline_variants

    # 11 other heads of a GPT-2-small-sized layer, 127 other neurons: no draw may be lost to a repeat
    # (repeats were dropped with a note that fewer counterparts exist)
    cfg = small_config(n_layers=1, n_heads=12, d_model=48, n_ctx=8, d_vocab=16)
    for seed in range(3):
        heads = baseline_variants([ablate_head(0, [1])], cfg, 10, seed)
        assert len(heads) == 10 and all(d[0].index != (1,) for d in heads), seed
        neurons = baseline_variants([ablate_neuron(0, [5])], runner.cfg, 30, seed)
        assert len(neurons) == 30 and all(d[0].index != (5,) for d in neurons), seed
    assert len(baseline_variants([ablate_neuron(0, range(64))], runner.cfg, 5, 0)) == 1  # one other set of 64


def test_ablation_effect_reports_baseline_for_vector_metrics(runner, toks):
    m = neuron_activation(0, [1, 2])
    r = ablation_effect(runner, toks, [ablate_neuron(0, [1])], [m, next_token_loss(toks)], n_baseline=4, seed=1)
    e = r.effects[m.name]
    assert set(e) == {"0.1", "0.2"} and e["0.2"].effect == pytest.approx(0.0, abs=1e-12)
    assert e["0.1"].effect == pytest.approx(-r.clean[m.name][0], abs=1e-12)
    assert r.effects["loss"].baseline.n == 4
    json.loads(r.to_json())


# ----------------------------------------------------------------------------- bad input


def test_bad_input(runner, w, toks, ref):
    with pytest.raises(UnknownHookError, match="did you mean 'blocks.0.attn.hook_z'"):
        run_with(runner, toks, [Intervention("zero", "head", "blocks.0.attn.hook_zz", (1,))], hooks=["hook_embed"])
    with pytest.raises(InvalidInputError, match="has 5 dimensions but .* d_model=32"):
        run_with(runner, toks, [ablate_direction("blocks.0.hook_resid_pre", torch.ones(5))], hooks=["hook_embed"])
    with pytest.raises(InvalidInputError, match="not one"):
        run_with(runner, toks, [ablate_direction("blocks.0.attn.hook_z", torch.ones(32))], hooks=["hook_embed"])
    with pytest.raises(InvalidInputError, match="reference dataset 'ref' is empty"):
        run_with(runner, toks, [ablate_head(0, 1, "mean", reference="ref")], references={"ref": ref[:0]},
                 hooks=["blocks.0.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="positions must align"):
        run_with(runner, toks, [ablate_head(0, 1, "mean", reference="ref")], references={"ref": ref[:, :4]},
                 hooks=["blocks.0.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="was not given"):
        run_with(runner, toks, [ablate_head(0, 1, "mean", reference="nope")], hooks=["blocks.0.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="head 4 does not exist"):
        run_with(runner, toks, [ablate_head(0, 4)], hooks=["blocks.0.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="at least two sequences"):
        run_with(runner, toks[:1], [ablate_head(0, 1, "resample")], hooks=["blocks.0.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="linearly dependent"):
        run_with(runner, toks, [ablate_direction("hook_pos_embed", torch.ones(2, 32))], hooks=["hook_embed"])
    with pytest.raises(InvalidInputError, match="position 12 is ablated"):
        run_with(runner, toks, [ablate_head(0, 1, positions=[12])], hooks=["blocks.0.attn.hook_z"])
    m = logit_diff(w, 1, 2)
    with pytest.raises(InvalidInputError, match="12 positions and the corrupted input 11"):
        patch_sweep(runner, toks, toks[:, :11], m)
    with pytest.raises(InvalidInputError, match="one number per sequence"):
        patch_sweep(runner, toks, toks.flip(0), neuron_activation(0, [1, 2]))
    with pytest.raises(UnknownHookError, match="did you mean"):
        patch_sweep(runner, toks, toks.flip(0), custom("blocks.1.hook_resid_psot", lambda a, r: a[:, -1, 0]))
    with pytest.raises(InvalidInputError, match="residual patching hook"):
        patch_sweep(runner, toks, toks.flip(0), m, hook="z")
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        logit_diff(w, 1, 999)
    with pytest.raises(PoslensError):
        head_sweep(runner, toks, toks.flip(0), m, layers=[5])
    d_mlp = runner.cfg.d_mlp
    with pytest.raises(InvalidInputError, match=f"neuron 0.{d_mlp} does not exist"):  # had been an IndexError
        ablation_effect(runner, toks, [ablate_head(0, 1)], [neuron_activation(0, d_mlp)], n_baseline=2)
    with pytest.raises(InvalidInputError, match=f"neuron 0.{d_mlp} does not exist"):
        patch_sweep(runner, toks, toks.flip(0), neuron_activation(0, d_mlp), layers=[0])
    with pytest.raises(InvalidInputError, match="indices >= 0"):
        neuron_activation(0, -1)


def test_named_neuron_ablation_says_when_the_mlp_writes_nothing():
    from poslens.analyses.causal.named import ablate_named

    kw = dict(neurons=[(0, 1)], n_seq=2, seq_len=16, n_baseline=2)
    silent = ablate_named(load_weights("tiny-attn"), **kw)  # the attention-only organism's MLP matrices are zeros
    assert silent.effects["loss"].effect == 0
    assert any("layer 0 writes nothing" in n for n in silent.notes)
    assert not any("writes nothing" in n for n in ablate_named(load_weights("tiny"), **kw).notes)


def test_named_ablation_says_when_it_measured_fewer_or_shorter_sequences_than_asked():
    from poslens.analyses.causal.named import ablate_named

    r = ablate_named(load_weights("tiny"), heads=[(0, 1)], n_seq=16, seq_len=1000, n_baseline=2)
    assert any("not the 16 x 1000 asked for" in n and "context is 256" in n for n in r.notes), r.notes


def test_named_ablation_takes_heads_as_results_name_them():
    from poslens.analyses.causal.named import ablate_named

    kw = dict(n_seq=2, seq_len=16, n_baseline=1)
    w = load_weights("tiny")
    by_name = ablate_named(w, heads=["0.1", "2.3"], neurons=["1.7"], **kw)  # e.g. duplicate_heads(w).ranking[:2]
    by_pair = ablate_named(w, heads=[(0, 1), (2, 3)], neurons=[(1, 7)], **kw)
    assert by_name.effects["loss"].effect == by_pair.effects["loss"].effect
    for bad in ("0.1x", [(0, 1, 2)], (0, 1), ["0"]):
        with pytest.raises(InvalidInputError, match="heads= takes"):
            ablate_named(w, heads=bad, **kw)


def test_named_ablation_and_patching_take_the_models_tokenizer(tmp_path):
    # a checkpoint without tokenizer files (an in-memory transformers model, a bare directory): the error
    # said to pass the model's own tokenizer, and neither function took one
    from poslens.analyses.causal.named import ablate_named, patch_prompts
    from poslens.models.tokenizer import Tokenizer
    from poslens.testing import random_checkpoint

    w = load_weights(str(random_checkpoint(tmp_path / "bare", small_config(d_vocab=1024))))
    with pytest.raises(InvalidInputError, match="the model's own tokenizer"):
        patch_prompts(w, "And David said", "And Moses said", "loss")
    tok = Tokenizer.for_checkpoint("tiny")
    p = patch_prompts(w, "And David said", "And Moses said", "loss", tokenizer=tok)
    assert p.clean_tokens == tok.to_str_tokens(tok.encode("And David said", prepend_bos=True))
    r = ablate_named(w, heads=[(0, 1)], n_seq=2, seq_len=16, n_baseline=1, data="sample", tokenizer=tok)
    assert r.effects["loss"].effect != 0


def test_building_blocks_take_weights_and_say_what_a_metric_is(runner, w, toks):
    loss = next_token_loss(toks)
    want = ablation_effect(runner, toks, [ablate_head(0, [1])], [loss], n_baseline=1).effects["loss"].effect
    # Weights failed on a missing attribute ('Weights' object has no attribute 'check_hook')
    assert ablation_effect(w, toks, [ablate_head(0, [1])], [loss], n_baseline=1).effects["loss"].effect == pytest.approx(
        want, abs=1e-5)  # its own float32 runner
    assert run_with(w, toks, [], hooks=["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"].shape == (5, 12, 32)
    assert patch_sweep(w, toks, toks.flip(0), loss, layers=[0]).sweep == "resid"
    with pytest.raises(InvalidInputError, match="a metric is a Metric .* got 'loss'"):  # 'str' object has no attribute 'hook'
        ablation_effect(runner, toks, [ablate_head(0, [1])], ["loss"])
    with pytest.raises(InvalidInputError, match="a metric is a Metric"):
        head_sweep(runner, toks, toks.flip(0), "loss")
    # a loss made from other tokens failed inside torch's cross_entropy (ValueError)
    with pytest.raises(InvalidInputError, match="the loss metric was made from 5 x 6 tokens"):
        ablation_effect(runner, toks, [ablate_head(0, [1])], [next_token_loss(toks[:, :6])], n_baseline=1)
