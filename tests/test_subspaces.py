"""Hidden-state subspaces: Marchenko-Pastur and spectral-gap recovery of a planted signal,
principal angles, overlap, union rank and MDS against planted rotations; the model path
(prefix property, probing points), bad input, the CLI and the report stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.geometry import hidden_states as H
from poslens.analyses.geometry import subspaces as S
from poslens.analyses.geometry.probe import probe_hooks
from poslens.cli import cli
from poslens.errors import InvalidInputError, MissingTensorError
from poslens.models import Runner, load_weights
from poslens.testing import random_state_dict, small_config, write_checkpoint
from poslens.testing.spectra import planted_states, rotated_bases


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from poslens.models.tokenizer import Tokenizer

    cfg = small_config(n_layers=2, n_heads=4, d_model=48, n_ctx=64, d_vocab=50257)
    sd = random_state_dict(cfg, seed=4)  # GPT-2's vocabulary size, so the GPT-2 tokenizer fits
    return write_checkpoint(tmp_path_factory.mktemp("sub") / "m", cfg, sd, tokenizer=Tokenizer.gpt2()), cfg


# ----------------------------------------------------------------------------- planted truth


@pytest.mark.parametrize("N, D, k", [(15, 256, 3), (150, 256, 8), (500, 128, 20), (2000, 64, 5)])
def test_marchenko_pastur_and_gap_recover_planted_k(N, D, k):
    rng = np.random.default_rng(N + k)
    B = np.linalg.qr(rng.normal(size=(D, k)))[0]
    # distinct signal strengths, all well above the MP edge sigma^2 (1 + sqrt(D/N))^2
    amps = np.linspace(4, 8, k) * (1 + math.sqrt(D / N))
    X = planted_states([B], N, signal_std=amps, noise_std=1.0, seed=k)[0]
    s = H.centred_svd(X)[1]
    lam = s**2 / (N - 1)
    mp = H.mp_rank(lam, N - 1, D)
    assert mp.k == k
    assert mp.noise_var == pytest.approx(1.0, rel=0.1)  # the iterative estimate finds sigma^2 = 1
    assert H.mp_rank(lam, N - 1, D, noise=1.0).k == k
    assert H.gap_rank(lam).k == k
    # 'total' counts the signal as noise and so sets the edge higher: it can only find fewer
    assert H.mp_rank(lam, N - 1, D, noise="total").k <= k


def test_mp_edge_formula_and_pure_noise():
    assert H.mp_edge(2.0, 100, 25) == pytest.approx(2.0 * 1.5**2)
    rng = np.random.default_rng(0)
    found = np.array([H.mp_rank(H.centred_svd(rng.normal(size=(300, 60)))[1] ** 2 / 299, 299, 60).k
                      for _ in range(40)])
    # pure noise: the top eigenvalue crosses the edge only by a Tracy-Widom excursion (~17% of draws)
    assert (found == 0).mean() >= 0.6 and found.max() <= 2
    # the noise estimate is unbiased on noise
    s = H.centred_svd(rng.normal(size=(100, 400)) * 3.0)[1]
    assert H.mp_rank(s**2 / 99, 99, 400).noise_var == pytest.approx(9.0, rel=0.05)


def test_angles_overlap_union_and_mds_from_planted_rotations():
    # k = 3 subspaces at 0, 10, 20 and 80 degrees along one rotation: all principal angles known
    phis = [0.0, 10.0, 20.0, 80.0]
    bases = rotated_bases(64, 3, phis, seed=1)
    X = planted_states(bases, 400, signal_std=[30.0, 25.0, 20.0], noise_std=0.5, seed=2)
    # the gap picks the planted 3 exactly; the MP edge may add a Tracy-Widom noise excursion
    g = H.hidden_geometry(X, ["a", "b", "c", "d"], threshold=0.9, subspace="gap")
    assert g.dims == [3, 3, 3, 3] and all(3 <= m.k <= 4 for m in g.mp)
    for c, want in zip(g.consecutive, (10.0, 10.0, 60.0)):
        assert c.angles_deg == pytest.approx([want] * 3, abs=1.5)
        assert c.sum_deg == pytest.approx(3 * want, abs=4)
    # cos 10 deg = 0.985 > 0.9 shared; cos 60 deg = 0.5 not shared
    assert [c.overlap for c in g.consecutive] == [1.0, 1.0, 0.0]
    # union: a..c share their 3 directions, d adds 3 new ones
    assert g.union_rank == 6 and g.union_share == pytest.approx(6 / 64)
    # the Grassmann distance is sqrt(3) |phi_i - phi_j| in radians, and MDS keeps it (points on a line)
    G = np.asarray(g.grassmann)
    assert G[0, 3] == pytest.approx(math.sqrt(3) * math.radians(80), rel=0.03)
    Y = np.asarray(g.mds)
    dY = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    assert dY == pytest.approx(G, abs=0.05)
    assert g.mean_pairwise_sum_deg == pytest.approx(3 * np.mean([10, 20, 80, 10, 70, 60]), abs=5)
    assert g.dispersion == pytest.approx(np.mean([10, 20, 80, 10, 70, 60]) / 90, abs=0.02)
    # the same geometry in token space: subspaces of R^N; union measured against N
    gt = H.hidden_geometry(X, space="tokens", subspace="gap")
    assert gt.ambient_dim == 400 and gt.dims == [3, 3, 3, 3]


def test_union_rank_and_effective_dims_by_hand():
    e = np.eye(5)
    assert H.union_rank([e[:, :2], e[:, 2:4], e[:, :1]], 0.9) == 4
    assert H.union_rank([e[:, :2], np.zeros((5, 0))], 0.9) == 2
    assert H.participation_ratio(np.array([1.0, 1.0, 0.0])) == pytest.approx(2.0)
    assert H.effective_rank(np.array([3.0, 1.0])) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert np.degrees(H.principal_angles(e[:, :1], (e[:, :1] + e[:, 1:2]) / math.sqrt(2))) == pytest.approx([45.0])


@pytest.mark.parametrize("D, ka, kb, eps", [(96, 30, 20, 1e-6), (96, 12, 40, 1e-3), (40, 8, 8, 0.0), (20, 5, 9, 1.0)])
def test_principal_angles_match_scipy_and_keep_small_angles(D, ka, kb, eps):
    from scipy.linalg import subspace_angles

    rng = np.random.default_rng(D + ka)
    A = np.linalg.qr(rng.normal(size=(D, ka)))[0]
    shared = min(ka, kb) // 2
    B = np.linalg.svd(np.c_[A[:, :shared] + eps * rng.normal(size=(D, shared)),
                            rng.normal(size=(D, kb - shared))], full_matrices=False)[0]
    ref = np.sort(subspace_angles(A, B))
    for th in (H.principal_angles(A, B, orthonormal=True), H.principal_angles(A * 3.0, B @ np.diag(np.arange(1, kb + 1)))):
        assert th.shape == (min(ka, kb),)
        # scipy's own small angles are only good to ~3e-8 where a direction is shared exactly
        np.testing.assert_allclose(th, ref, atol=5e-8)
    th = H.principal_angles(A, B, orthonormal=True)
    if eps == 0.0:
        assert th[:shared].max() < 1e-12  # a shared direction is at angle 0, not arccos's ~1e-8
    elif eps < 1e-3:
        assert th[:shared].min() > 0.1 * eps  # tiny angles are resolved, not rounded to zero


def test_points_without_signal_are_left_out_with_a_note():
    rng = np.random.default_rng(3)
    X = [rng.normal(size=(200, 20)) * 1e-3 for _ in range(3)]
    g = H.hidden_geometry(X, noise=1.0)  # known noise far above the data: no signal anywhere
    assert g.dims == [0, 0, 0] and g.union_rank == 0
    assert g.consecutive[0].sum_deg is None and "no eigenvalue above" in g.notes[0]


@pytest.mark.parametrize("t", [0, 1, 1.5, -0.2, float("nan")])
def test_threshold_outside_unit_interval(t):
    with pytest.raises(InvalidInputError, match="threshold"):
        H.hidden_geometry([np.zeros((5, 4))], threshold=t)


# ----------------------------------------------------------------------------- through a model


def test_model_prefixes_match_separate_runs(model):
    path, cfg = model
    w = load_weights(path)
    ids = list(range(100, 160))
    r = S.hidden_subspaces(w, ids, lengths={"short": 10, "long": 60})
    assert r.prompts["short"].points == ["embed", "block 0", "block 1 +ln_f"]
    # the short prompt is a prefix of the long one: one causal pass gives it exactly
    acts = Runner(w).run(torch.tensor([ids[:10]]), hooks=probe_hooks(cfg.n_layers))
    alone = H.hidden_geometry([acts[h][0].double().numpy() for h in probe_hooks(cfg.n_layers)],
                              r.prompts["short"].points)
    for a, b in zip(alone.eigenvalues, r.prompts["short"].eigenvalues):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * max(b))
    assert alone.dims == r.prompts["short"].dims
    # without ln_f the last point is the raw residual stream
    raw = S.hidden_subspaces(w, ids, lengths={"long": 60}, final_ln=False)
    assert raw.prompts["long"].points[-1] == "block 1"
    np.testing.assert_allclose(raw.prompts["long"].eigenvalues[0], r.prompts["long"].eigenvalues[0], rtol=1e-4)


def test_spectra_figure_has_one_legend_entry_per_point(model, tmp_path):
    """Three prompts side by side share one legend of points (a point's colour is the same in every
    panel), without gaps between entries: a legend per prompt and point overflowed the figure at
    the report's full size (4 prompts x 13 points on a gpt2-small shape)."""
    import re

    from poslens.viz.subspaces import subspace_figures

    path, _ = model
    r = S.hidden_subspaces(load_weights(path), list(range(100, 160)), lengths={"a": 10, "b": 30, "c": 60})
    html = next(p for p in subspace_figures(r, tmp_path) if p.name == "subspace_spectra.html").read_text()
    names = re.findall(r'"name":"([^"]+)"', html)
    shown = re.findall(r'"showlegend":(true|false)', html)
    assert len(names) == 3 * 3 and set(names) == {"embed", "block 0", "block 1 +ln_f"}
    assert shown.count("true") == 3 and '"tracegroupgap":0' in html


def test_lengths_capped_at_n_ctx_with_a_note(model):
    from poslens.models.tokenizer import Tokenizer

    path, cfg = model
    r = S.hidden_subspaces(load_weights(path), tokenizer=Tokenizer.gpt2(), lengths={"short": 15, "long": 500})
    assert r.prompts["long"].n_tokens == cfg.n_ctx
    assert any("capped at 64" in n and "n_ctx=64" in n for n in r.notes)
    assert r.options["text"] == "default passage" and r.prompts["short"].text


def test_bad_prompts(model):
    from poslens.models.tokenizer import Tokenizer

    path, cfg = model
    w, tok = load_weights(path), Tokenizer.gpt2()
    with pytest.raises(InvalidInputError, match="empty"):
        S.hidden_subspaces(w, text="   ", tokenizer=tok)
    with pytest.raises(InvalidInputError, match="longer than the model's context"):
        S.hidden_subspaces(w, list(range(cfg.n_ctx + 1)), whole=True)
    assert S.hidden_subspaces(w, list(range(cfg.n_ctx)), whole=True).prompts["whole"].n_tokens == cfg.n_ctx
    with pytest.raises(InvalidInputError, match="at least 3"):
        S.hidden_subspaces(w, [1, 2, 3, 4], lengths={"tiny": 2})
    with pytest.raises(InvalidInputError, match="threshold"):
        S.hidden_subspaces(w, list(range(10)), threshold=1.0)


def test_partial_checkpoint_says_what_is_missing(partial_ckpt):
    with pytest.raises(MissingTensorError, match="wte.weight.*hidden-state subspaces"):
        S.hidden_subspaces(load_weights(partial_ckpt), list(range(20)))


# ----------------------------------------------------------------------------- CLI, tiny, report


def test_subspaces_and_lens_options_declared_once(model, tmp_path):
    import dataclasses

    from poslens.analyses.geometry.options import LensOptions, SubspacesOptions
    from poslens.cli.geometry import lens_cmd, subspaces_cmd

    for cmd, cls in ((subspaces_cmd, SubspacesOptions), (lens_cmd, LensOptions)):
        params = {p.name: p for p in cmd.params}
        for f in dataclasses.fields(cls):
            assert f.name in params, f.name
            assert f.name in ("lengths", "seed", "noise") or params[f.name].default == f.default, f.name
    path, _ = model
    w = load_weights(path)
    a = S.hidden_subspaces(w, list(range(40)), SubspacesOptions(lengths={"a": 20}, space="tokens"), subspace="gap")
    b = S.hidden_subspaces(w, list(range(40)), lengths={"a": 20}, space="tokens", subspace="gap")
    assert a.options == b.options and a.prompts["a"].dims == b.prompts["a"].dims
    with pytest.raises(InvalidInputError, match="did you mean 'threshold'"):
        S.hidden_subspaces(w, list(range(40)), treshold=0.5)
    # the older spellings --bos and --no-final-ln reach the analysis
    res = run("subspaces", "-m", path, "-o", tmp_path / "o", "--lengths", "12", "--bos", "--no-final-ln",
              "--noise", "0.5", "--json")
    assert res.exit_code == 0, res.output
    o = json.loads(res.output)["options"]
    assert (o["prepend_bos"], o["final_ln"], o["noise"]) == (True, False, 0.5)


def test_cli_subspaces(model, tmp_path):
    path, _ = model
    out = tmp_path / "o"
    res = run("subspaces", "-m", path, "-o", out, "--lengths", "12,40", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["kind"] == "subspaces" and set(d["prompts"]) == {"len0", "len1"}
    assert (out / "result.json").is_file() and (out / "subspace_mds.png").is_file()
    assert (out / "subspace_spectra.html").is_file()


@pytest.mark.parametrize("args, words", [
    (("--threshold", "1.2"), "'--threshold': 1.2 is not in the range 0.0<=x<=1.0"),
    (("--threshold", "0"), "threshold must be strictly between 0 and 1"),
    (("--text", ""), "prompt is empty"),
    (("--lengths", "15,x"), "not a whole number"),
    (("--noise", "loud"), "--noise"),
    (("--subspace", "pca"), "'pca' is not one of 'mp', 'gap'"),
    (("--space", "rows"), "'rows' is not one of 'features', 'tokens'"),
])
def test_cli_subspaces_bad_input(model, tmp_path, args, words):
    path, _ = model
    out = tmp_path / "never"
    res = run("subspaces", "-m", path, "-o", out, *args)
    assert res.exit_code == 2, res.output
    err = res.output.strip()
    assert err.startswith("poslens: error:") and words in err and "\n" not in err
    assert not out.exists()


def test_cli_prompt_longer_than_n_ctx(model, tmp_path):
    path, _ = model
    res = run("subspaces", "-m", path, "-o", tmp_path / "never", "--text", "word " * 200, "--whole")
    assert res.exit_code == 2 and "longer than the model's context" in res.output
    assert not (tmp_path / "never").exists()


def test_cli_partial_checkpoint_one_line_error(partial_ckpt, tmp_path):
    res = run("subspaces", "-m", partial_ckpt, "-o", tmp_path / "p")
    assert res.exit_code == 2 and "wte.weight" in res.output and "\n" not in res.output.strip()
    assert not (tmp_path / "p").exists()


def test_tiny_runs_and_report_stage(tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_geometry import STAGES

    w = load_weights("tiny")
    r = S.hidden_subspaces(w, tokenizer=_tiny_tok(), lengths={"short": 15, "medium": 60})
    g = r.prompts["medium"]
    assert len(g.points) == w.cfg.n_layers + 1 and all(k >= 1 for k in g.dims)
    assert 0 < g.union_share <= 1 and len(g.consecutive) == w.cfg.n_layers
    stages = [s for s in STAGES if s.name == "geometry_subspaces"]
    page, (rep,) = build_report(["tiny"], tmp_path / "r", stages=stages, size="quick", progress=False)
    o = rep.outcomes[0]
    assert o.status == "done" and o.figures and rep.passes[0]["dataset"].startswith("geometry-text")


def _tiny_tok():
    from poslens.models import open_checkpoint
    from poslens.models.tokenizer import Tokenizer

    return Tokenizer.for_checkpoint(open_checkpoint("tiny"))


def test_mds_is_finite_and_deterministic_on_non_euclidean_distances():
    rng = np.random.default_rng(7)
    non_euclidean = 0
    for n in (3, 4, 5, 9, 16):
        for _ in range(25):
            A = rng.uniform(0.1, 3.0, size=(n, n))
            D = (A + A.T) / 2
            np.fill_diagonal(D, 0.0)
            J = np.eye(n) - 1.0 / n
            non_euclidean += np.linalg.eigvalsh(-0.5 * J @ D**2 @ J).min() < -1e-9
            Y, stress = H.mds_map(D, seed=0)
            assert np.isfinite(Y).all() and stress is not None and np.isfinite(stress)
            Y2, _ = H.mds_map(D, seed=0)
            assert np.array_equal(Y, Y2)
    assert non_euclidean >= 90  # most of the 125 matrices have negative Gram eigenvalues


def test_classical_mds_drops_negative_eigenvalues_and_recovers_euclidean_points():
    rng = np.random.default_rng(3)
    P = rng.normal(size=(6, 2))
    D = np.linalg.norm(P[:, None] - P[None], axis=-1)
    Y = H.classical_mds(D)
    assert np.linalg.norm(Y[:, None] - Y[None], axis=-1) == pytest.approx(D, abs=1e-9)
    assert H.kruskal_stress(D, Y) == pytest.approx(0.0, abs=1e-9)
    # a metric no plane can hold (a 4-star): only the positive part of the spectrum is embedded
    star = np.array([[0, 1, 1, 1], [1, 0, 2, 2], [1, 2, 0, 2], [1, 2, 2, 0.0]])
    Y = H.classical_mds(star)
    assert np.isfinite(Y).all() and H.kruskal_stress(star, Y) > 0


def test_two_layer_model_maps_its_layers_without_nan(model):
    from poslens.models.tokenizer import Tokenizer

    path, _ = model
    r = S.hidden_subspaces(load_weights(path), tokenizer=Tokenizer.gpt2(), lengths={"short": 15, "long": 500})
    for g in r.prompts.values():
        assert len(g.mds) == len(g.mds_points) and np.isfinite(np.asarray(g.mds, dtype=float)).all()
