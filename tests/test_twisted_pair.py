"""The twisted-pair construction (after the twisted-pair post): real weights run by the Runner, the post's bound,
its claims, bad input, the GPT-2 part on the partial checkpoint, planted truth, CLI and report stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from poslens.analyses.twisted_pair import twisted_pair
from poslens.analyses.twisted_pair.build import build
from poslens.analyses.twisted_pair.experiments import helix_reuse, near_intersection, noise_cancellation
from poslens.analyses.twisted_pair.curves import curve_stats, make_curve
from poslens.analyses.twisted_pair.gpt2 import fit_curve, gpt2_part, neuron_pairs
from poslens.analyses.twisted_pair.verify import run_estimates, verify
from poslens.claims.attach import with_published
from poslens.cli import cli
from poslens.errors import InvalidInputError
from poslens.models import Runner, load_weights
from poslens.testing.twisted_pair import planted_twisted_pair_checkpoint


@pytest.fixture(scope="module")
def helix_con():
    return build(make_curve("helix"), n=128, M=8, k=4)


# ----------------------------------------------------------------------------- curves


def test_curve_stats_match_hand_computed_values():
    s = curve_stats(make_curve("helix", radius=2.0, turns=1.5, drift=0.5), n=256)
    w = 2 * np.pi * 1.5
    assert s.L == pytest.approx(2.0 * w**2, rel=1e-4)  # |f''| = r w^2
    assert s.speed_min == pytest.approx(np.hypot(2.0 * w, 0.5), rel=1e-6)
    assert s.X.shape == (257, 3)


# ----------------------------------------------------------------------------- the construction


@pytest.mark.parametrize("spec,params,variant,n,M,k", [
    ("helix", {}, "plain", 128, 8, 4),
    ("circle-drift", {}, "plain", 128, 16, 6),
    ("random", {"dim": 5, "seed": 3}, "plain", 160, 12, 5),
    ("loop", {"gap": 0.3}, "plain", 128, 8, 3),
    ("helix", {"turns": 3.0, "drift": 3.0}, "helix", 192, 6, 4),
])
def test_construction_estimates_within_the_bound(spec, params, variant, n, M, k):
    con = build(make_curve(spec, **params), n, M, k, variant=variant)
    v = verify(con)
    assert con.feasible and v.assumptions_hold
    assert con.cfg.d_mlp == 2 * con.n_sentries == (2 * M + 2 if variant == "plain" else 2 * M)
    assert v.within_bound, v.outside[:3]
    assert v.runner_vs_exact < 1e-4  # the Runner computes what the mathematics says
    assert v.n_pairs == sum(min(n, i + k) - max(0, i - k) + 1 for i in range(n + 1))
    assert v.max_error > 1e-3  # a real curve: the estimate is not trivially exact


def test_estimate_matches_the_closed_form_on_a_circle():
    # f(t) = (cos w t, sin w t): n (x_j - x_i).f'(s)/|f'(s)|^2 = n/w [sin w(t_j - s) - sin w(t_i - s)]
    w, n, M, k = 2 * np.pi * 0.8, 97, 10, 5  # n/M not a half-integer: no point is equidistant from two sentries
    con = build(make_curve("helix", turns=0.8, drift=0.0), n, M, k)
    tokens, i, j = con.pair_tokens()
    est, _ = run_estimates(con, tokens)
    s = np.ceil(i / n * M - 0.5) / M  # the nearest sentry, ties to the lower one
    expected = n / w * (np.sin(w * (j / n - s)) - np.sin(w * (i / n - s)))
    np.testing.assert_allclose(est, expected, atol=1e-5)
    assert con.dot_gate_ok.all()  # on a circle the post's literal f(s_m) gate works too


def test_the_construction_is_a_real_checkpoint(tmp_path, helix_con):
    path = helix_con.save(tmp_path / "tp")
    meta = json.loads((path / "twisted_pair.json").read_text())
    w = load_weights(str(path))
    assert w.cfg.normalization == "none" and w.cfg.act_fn == "relu" and w.cfg.d_mlp == 18
    tokens, i, j = helix_con.pair_tokens()
    acts = Runner(w, dtype="float64").run(tokens, hooks=["blocks.0.attn.hook_pattern", meta["readout"]["hook"]])
    est = acts[meta["readout"]["hook"]][:, 1, meta["readout"]["direction"]].numpy()
    ref, _ = run_estimates(helix_con, tokens)
    np.testing.assert_allclose(est, ref, atol=1e-9)
    pat = acts["blocks.0.attn.hook_pattern"][:, :, 1]  # query at slot 1
    assert pat[:, 0, 0].min() > 1 - 1e-9 and pat[:, 1, 1].min() > 1 - 1e-9  # head A reads x_j, head B x_i


# ----------------------------------------------------------------------------- the post's claims


def test_common_mode_noise_cancels_in_the_pair_but_not_in_one_neuron(helix_con):
    r = noise_cancellation(helix_con, sigmas=(0.0, 0.1, 3.0), max_pairs=800)
    clean, quiet, loud = r.rows
    assert clean.pair_rms == 0 and clean.single_rms < 1e-6
    assert quiet.gate_flips == 0
    assert quiet.pair_rms < 1e-9 < 0.05 < quiet.single_rms
    assert quiet.differential_rms > 0.05  # independent noise is not cancelled
    assert loud.gate_flips > 0 and loud.pair_rms > 1e-3  # flipped gates break it


def test_failure_where_the_curve_nearly_meets_itself():
    r = near_intersection((0.1, 1e-5), n=256, M=16, k=4, max_pairs=3000)
    wide, tight = r.rows
    assert tight.crossing_margin < 1e-3 * wide.crossing_margin
    assert tight.crossing_margin < tight.other_margin_min
    assert wide.noisy_outside_bound == 0 < tight.noisy_outside_bound
    assert tight.failures_near_crossing >= 0.9
    assert tight.clean_within_bound  # exact arithmetic still works: the failure is fragility


def test_plain_sentries_fail_on_a_multi_turn_helix_while_the_helix_variant_reuses_them():
    with pytest.raises(InvalidInputError, match="cannot be gated"):
        build(make_curve("helix", turns=3.0, drift=3.0), 192, 24, 4)
    r = helix_reuse((64, 128, 256), period_points=64, k=4, Ms_plain=(4, 8, 16, 32), M_helix=8)
    plain = [row.plain.needed for row in r.rows]
    helix = [row.helix.needed.M for row in r.rows]
    assert plain[0] is not None and plain[-1] is None  # 1 turn: fine; 4 turns: no M works
    assert len(set(helix)) == 1
    assert all(row.helix_fixed.within_bound for row in r.rows)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw,match", [
    ({"M": 0}, "M >= 1"),
    ({"k": 64}, "k=64 >= n=64"),
    ({"M": 63}, "fewer sentries than points"),
])
def test_bad_sizes(kw, match):
    args = {"n": 64, "M": 4, "k": 2, **kw}
    with pytest.raises(InvalidInputError, match=match):
        build(make_curve("helix"), **args)


@pytest.mark.parametrize("fn,match", [
    (lambda t: np.c_[np.abs(t - 0.4), t], r"not smooth enough.*t=0\.4"),
    (lambda t: t, r"returned shape \(65,\)"),
    (lambda t: np.c_[t, 1 / (t - 0.5)], "not finite"),
    (lambda t: np.c_[t, t] / 0 if t.size else t, "not finite"),
    (lambda t: [[1.0, 2.0]], "must return shape"),
    (lambda t: np.c_[np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], r"not injective: f\(0\.0000\) = f\(1\.0000\)"),
    (lambda t: np.c_[(t - 0.5) ** 3, (t - 0.5) ** 3], r"stops .*t=0\.5"),
])
def test_bad_curves(fn, match):
    with np.errstate(all="ignore"), pytest.raises(InvalidInputError, match=match):
        curve_stats(make_curve(fn), 64)


def test_self_intersecting_curve_is_rejected_with_where():
    with pytest.raises(InvalidInputError, match=r"not injective: f\(0\.1667\) = f\(0\.8333\)"):
        curve_stats(make_curve("loop", gap=0.0), 128)


def test_a_raising_callable_is_reported():
    def bad(t):
        raise KeyError("boom")

    with pytest.raises(InvalidInputError, match="raised KeyError"):
        curve_stats(make_curve(bad), 32)


# ----------------------------------------------------------------------------- the model part


def test_gpt2_part_on_the_partial_checkpoint(partial_ckpt):
    g = gpt2_part(load_weights(str(partial_ckpt)), layers=[0], n_surrogates=2)
    o = g.ode
    assert o.r2 > 0.9 > o.surrogate_r2_max and o.r2 > o.r2_central  # helix: f' ~ W f + c
    assert len(g.heads) == 12 and g.ideal_cos > 0.9
    assert abs(g.heads[0].mean_cos) < 0.5  # no layer-0 head writes f' along its own direction
    assert len(g.layer0_actual) == 12
    assert g.neurons is None and "c_fc.weight" in g.neurons_skipped
    # the claim row names how f' was estimated, so it can be told apart from the helix section's fit
    from types import SimpleNamespace

    from poslens.claims.twisted_pair_post import _gpt2_checks

    row = _gpt2_checks(SimpleNamespace(model="gpt2", gpt2=g))[0]
    assert f"R² {o.r2:.3f} (Savitzky-Golay, window {o.window}, top {o.n_components} PCs" in row.ours, row.ours


def test_derivative_heads_in_value_space_match_the_heads_full_outputs(partial_ckpt):
    """The cosines and norms are taken in each head's d_head dimensions; the same numbers from its
    explicit [P, d_model] OV image of LN(x) (real GPT-2 weights, two layers)."""
    import torch
    import torch.nn.functional as F

    from poslens.analyses.twisted_pair.gpt2 import derivative_heads

    w = load_weights(str(partial_ckpt))
    cf, _ = fit_curve(w, n_components=6, n_surrogates=0)
    got = {h.head: h for h in derivative_heads(w, cf, layers=[0, 3], runner_layer0=False, seed=1).heads}
    P = len(cf.X)
    sl, perm = slice(25, P - 25), np.random.default_rng(1).permutation(P)
    Dc = cf.D - cf.D.mean(0)

    def cos(A, B):
        return (A * B).sum(1) / (np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1))

    for l in (0, 3):
        g = lambda n: w.get(f"blocks.{l}.{n}").double()  # noqa: E731
        xn = F.layer_norm(torch.as_tensor(cf.X), (w.cfg.d_model,), g("ln1.w"), g("ln1.b"), w.cfg.eps)
        for h in range(w.cfg.n_heads):
            out = ((xn @ g("attn.W_V")[h] + g("attn.b_V")[h]) @ g("attn.W_O")[h]).numpy()
            oc = out - out.mean(0)
            r = got[f"{l}.{h}"]
            assert r.mean_cos == pytest.approx(cos(oc[sl], Dc[sl]).mean(), abs=1e-12)
            assert r.shuffled_cos == pytest.approx(cos(oc[sl], Dc[perm][sl]).mean(), abs=1e-12)
            assert r.output_norm == pytest.approx(np.linalg.norm(oc, axis=1).mean(), rel=1e-10)


def test_planted_derivative_head_and_twisted_pairs_are_recovered(tmp_path):
    p = planted_twisted_pair_checkpoint(tmp_path / "planted", n_pairs=4)
    g = gpt2_part(load_weights(str(p.path)), n_components=3, window=21, n_surrogates=2)
    assert g.ode.r2 > 0.99
    best = g.heads[0]
    assert best.head == f"0.{p.deriv_head}" and best.mean_cos > 0.95
    n = g.neurons
    assert n.n_twisted == 4
    assert {tuple(c.neurons) for c in n.candidates[:4]} == set(p.pairs)
    assert all(c.twisted and c.frac_diff > 0.9 for c in n.candidates[:4])


def test_the_construction_is_planted_truth_for_the_neuron_search():
    con = build(make_curve("circle-drift"), 64, 4, 3)
    cf, _ = fit_curve(con.weights, source="W_E", first_position=0, n_components=3, window=11, n_surrogates=0)
    n = neuron_pairs(con.weights, cf, top=5)
    # every neuron writes along v, so a + of one sentry and a - of a neighbour can look twisted too; the
    # true pairs must rank first
    assert n.n_twisted >= 5 and all(c.twisted for c in n.candidates)
    assert {tuple(c.neurons) for c in n.candidates} == {(2 * m, 2 * m + 1) for m in range(5)}
    assert all(c.cos_out < -0.999 for c in n.candidates)


# ----------------------------------------------------------------------------- result, CLI, report


def test_result_records_options_readings_and_checks():
    r = twisted_pair(n=64, M=4, k=2, sweep_M=(2, 4), sweep_n=(), sweep_k=(1, 2), claims=False,
                     grid_n=(64,), grid_k=(2,), grid_M=(4,))
    assert r.checks == []
    d = json.loads(with_published(r, None).to_json())
    assert d["kind"] == "twisted_pair" and d["options"]["M"] == 4 and len(d["readings"]) >= 5
    assert [row["M"] for row in d["sweeps"]["M"]] == [2, 4] and len(d["grid"]) == 5
    assert d["checks"][0]["reproduced"] and d["float32"]["max_error"] < d["verification"]["max_bound"]


def test_the_model_free_part_is_computed_once_for_several_models(monkeypatch):
    """The construction and its experiments do not depend on the model: a second model with the same
    options reuses them (same values as computed afresh); only the model part runs again."""
    import poslens.analyses.twisted_pair.measure as TM

    kw = dict(n=64, M=4, k=2, sweep_M=(2, 4), sweep_n=(), sweep_k=(), grid=False, claims=False, layers=[0])
    TM._model_free.cache_clear()
    builds = []
    real_build = TM.build
    monkeypatch.setattr(TM, "build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    a = twisted_pair(load_weights("tiny"), **kw)
    b = twisted_pair(load_weights("tiny-attn"), **kw)
    assert len(builds) == 1 and a.gpt2.model != b.gpt2.model
    TM._model_free.cache_clear()
    fresh = twisted_pair(load_weights("tiny-attn"), **kw)
    assert len(builds) == 2
    for f in ("construction", "verification", "float32", "sweeps"):
        assert getattr(b, f) == getattr(fresh, f), f
    # options that cannot be hashed (a curve's parameters) are computed afresh, not refused
    c = twisted_pair(curve="helix", curve_params={"turns": 0.8}, **kw)
    assert c.construction.curve.params["turns"] == 0.8 and len(builds) == 3


def _cli(args, tmp_path):
    return CliRunner().invoke(cli, ["twisted-pair", "--out", str(tmp_path / "out"), *args])


def test_cli_json_figures_and_saved_model(tmp_path):
    res = _cli(["--n", "64", "--M", "4", "--k", "2", "--sweep-M", "2,4", "--sweep-n", "", "--sweep-k", "",
                "--no-grid", "--noise", "0,0.1", "--gaps", "0.1,0.0001", "--reuse-n", "64", "--no-model",
                "--save-model", str(tmp_path / "model"), "--json"], tmp_path)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["verification"]["within_bound"] and d["noise"]["rows"][1]["pair_rms"] < 1e-9
    files = {f.name for f in (tmp_path / "out").iterdir()}
    assert {"result.json", "tp_estimate.png", "tp_estimate.html", "tp_noise.png", "tp_near_intersection.png"} <= files
    assert (tmp_path / "model" / "model.safetensors").is_file() and (tmp_path / "model" / "twisted_pair.json").is_file()


def test_a_save_model_that_fails_leaves_the_out_folder_as_it_was(tmp_path):
    """The figures were drawn first: beside the earlier command's result.json, as if they were its."""
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["helix", "-o", str(out), "--no-figures"]).exit_code == 0
    (tmp_path / "file").write_text("x")
    res = _cli(["--n", "64", "--M", "4", "--k", "2", "--sweep-M", "", "--sweep-n", "", "--sweep-k", "", "--no-grid",
                "--no-claims", "--no-model", "--save-model", str(tmp_path / "file" / "m")], tmp_path)
    assert res.exit_code == 2 and "cannot write the construction" in res.stderr, res.output
    assert sorted(f.name for f in out.iterdir()) == [".poslens-written", "result.json"]


@pytest.mark.parametrize("args,match", [
    (["--M", "0"], "'--M': 0 is not in the range x>=1"),
    (["--n", "64", "--k", "64"], "k=64 >= n=64"),
    (["--curve", "loop"], "not injective"),
    (["--curve", "no_such_module_xyz:f"], "cannot import curve module"),
    (["--curve", "spiral"], "unknown curve 'spiral'"),
    (["--curve", "helx"], "unknown curve 'helx' (did you mean 'helix'?)"),
    (["--param", "turns"], "KEY=VALUE"),
    (["--param", "colour=3"], "bad parameter for curve 'helix'"),
    (["--sweep-M", "4,x"], "comma-separated list of integers"),
])
def test_cli_bad_input(args, match, tmp_path):
    res = _cli(["--no-model", "--no-grid", "--no-claims", "--sweep-M", "", "--sweep-n", "", "--sweep-k", "", *args],
               tmp_path)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and match in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_cli_user_callable_with_wrong_shape(tmp_path):
    f = tmp_path / "curves.py"
    f.write_text("import numpy as np\ndef flat(t):\n    return np.sin(t)\n")
    res = _cli(["--curve", f"{f}:flat", "--no-model", "--no-grid", "--no-claims", "--sweep-M", "", "--sweep-n", "",
                "--sweep-k", ""], tmp_path)
    assert res.exit_code == 2 and "must return shape" in res.stderr


def test_report_stage_runs_on_a_planted_checkpoint(tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_twisted_pair import STAGES

    p = planted_twisted_pair_checkpoint(tmp_path / "planted")
    _, (rep,) = build_report([str(p.path)], tmp_path / "r", stages=STAGES, size="quick", progress=False)
    (o,) = rep.outcomes
    assert o.status == "done", o.reason
    assert o.result["verification"]["within_bound"] and o.result["gpt2"]["neurons"]["n_twisted"] == 4
    assert any(f.endswith("tp_estimate.html") for f in o.figures)  # the PNG twin only with --png


def test_options_declared_once_reach_cli_and_report(tmp_path):
    import dataclasses

    from poslens.analyses.twisted_pair.options import Options
    from poslens.cli.twisted_pair import twisted_pair_cmd
    from poslens.report.stage_twisted_pair import STAGES

    params = {p.name: p for p in twisted_pair_cmd.params}
    for f in dataclasses.fields(Options):
        if f.name == "curve_params":  # --param KEY=VALUE, repeatable
            continue
        want = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        assert params[f.name].default == want, f.name
    res = _cli(["--n", "64", "--M", "4", "--k", "2", "--sweep-M", "", "--sweep-n", "", "--sweep-k", "", "--no-grid",
                "--noise", "0,0.2", "--gaps", "", "--reuse-n", "", "--no-model", "--json"], tmp_path)
    assert res.exit_code == 0, res.output
    o = json.loads(res.stdout)["options"]
    assert o["noise_sigmas"] == [0.0, 0.2] and o["reuse_ns"] == [] and o["grid"] is None and o["sweep_M"] == []
    bad = _cli(["--gate", "lp", "--no-model"], tmp_path)
    assert bad.exit_code == 2 and "'lp' is not one of 'fit', 'dot'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    class Ctx:
        seed = 0

        class cfg:
            d_model = 4

        @staticmethod
        def pick(*v):
            return v[1]

    opts = STAGES[0].options(Ctx())
    assert set(opts) == {f.name for f in dataclasses.fields(Options)} and opts["n_components"] == 4
    Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()})  # the report's options are valid
