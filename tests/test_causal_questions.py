"""The seeds' causal questions, the CLI commands and the report stage, on planted and real checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.causal import question_duplicate as QD
from poslens.analyses.causal import question_helix as QH
from poslens.analyses.causal.run import run_with
from poslens.cli import cli
from poslens.errors import InvalidInputError
from poslens.models import Runner, load_weights
from poslens.testing import random_checkpoint, small_config
from poslens.testing.duplicate import planted_duplicate_checkpoint


@pytest.fixture(scope="module")
def pdup(tmp_path_factory):
    return planted_duplicate_checkpoint(tmp_path_factory.mktemp("pdup") / "model")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("small") / "m", small_config(n_ctx=64, d_model=32, n_heads=4), seed=2)


WORDS = " ".join(f"w{1 + (7 * i) % 55}" for i in range(400))


def test_duplicate_question_finds_the_planted_path(pdup):
    r = QD.duplicate_neuron_ablation(load_weights(str(pdup.path)), n_seq=8, seq_len=48, n_random=5, n_neurons=3)
    assert r.duplicate_heads == [f"0.{pdup.head}"] and r.selected[0] == pdup.neuron
    n = r.neurons[str(pdup.neuron)]
    # the planted neuron reads only the duplicate head's positional output: ablating that head removes its gap
    assert n.gap < 0 and abs(n.duplicate_gap_change + n.gap) < 0.2 * abs(n.gap)
    assert abs(n.others_gap_change) < 0.1 * abs(n.gap)
    e = r.effects["duplicate"]["gap"]
    assert e.effect < 0 and e.vs_random_neurons.z < -10 and e.vs_random_neurons.baseline.n == 5
    assert any("distinct random head set" in x for x in r.notes)  # 2 heads: one possible random set
    # every repeated sequence is measured from its first duplicated position to its end
    dd = r.data
    assert dd.measured_from == dd.seq_len - dd.n_repeated_positions // dd.repeated_sequences == 25  # BOS + 24 + 23
    d = json.loads(r.to_json())
    assert d["interventions"]["duplicate"]["kind"] == "mean" and d["interventions"]["duplicate"]["reference"] == "distinct"


def test_duplicate_question_neuron_choices_and_errors(pdup):
    w = load_weights(str(pdup.path))
    r = QD.duplicate_neuron_ablation(w, n_seq=6, seq_len=40, n_random=3, neurons=[pdup.neuron, 3], kind="zero",
                                     select="activation")
    assert r.selected == [pdup.neuron, 3] and r.selection == "given"
    a = QD.duplicate_neuron_ablation(w, n_seq=6, seq_len=40, n_random=3, n_neurons=2, select="activation")
    # chosen on a separate set of sequences, the neurons' gap holds up on the measured ones, unlike random neurons'
    b = a.random_neuron_clean_gap.baseline
    assert a.clean.gap_size > b.mean + 2 * b.std and "separate selection set" in a.selection
    from poslens.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="neuron 99999 does not exist"):
        QD.duplicate_neuron_ablation(w, neurons=[99999])
    with pytest.raises(InvalidInputError, match="select must be one of pvo, activation"):
        QD.duplicate_neuron_ablation(w, select="magic")


def test_helix_question_variance_matched_control(pdup):
    w = load_weights(str(pdup.path))
    r = QH.helix_ablation(w, text=WORDS, n_seq=4, seq_len=40, n_random=3, prev_threshold=0.5)
    assert r.clean_loss is not None and r.loss is not None
    assert r.loss.random.baseline.n == r.loss.matched.baseline.n == 3 and len(r.gains) == 3
    # the matched control's perturbation of W_pos has the same total variance as the helix removal
    runner = Runner(w)
    toks = torch.zeros(1, 40, dtype=torch.long)
    W = runner.run(toks, hooks=["hook_pos_embed"])["hook_pos_embed"][0].double()
    def moved(record):
        iv = record.intervention()
        return float(((run_with(runner, toks, [iv], hooks=["hook_pos_embed"])["hook_pos_embed"][0].double() - W) ** 2).sum())

    helix = moved(r.interventions.helix)
    assert helix > 0
    assert r.interventions.matched[0].basis is None  # baseline draws are recorded compactly
    with pytest.raises(InvalidInputError, match="cannot be redone"):
        r.interventions.matched[0].intervention()
    assert r.variance_share.removed_helix > r.variance_share.removed_random.mean
    assert not [n for n in r.notes if "asked for" in n]
    # a text too short for n_seq windows is run on the windows it holds, and the result says so
    few = QH.helix_ablation(w, text=WORDS, n_seq=500, seq_len=40, n_random=2, prev_threshold=0.5)
    held = few.input.n_seq
    assert held < 500 and f"the given text holds {held} windows of 40 tokens, not the 500 asked for" in few.notes[-1]


def test_helix_question_positional_only_on_a_random_model(small):
    r = QH.helix_ablation(load_weights(str(small)), n_random=3, seq_len=64, positional_only=True)
    assert r.clean_loss is None and r.loss is None and r.prev_attention.random.baseline.n == 3
    assert len(r.per_head) == 4 and r.input.n_seq == 1


def test_helix_question_options_declared_once(small, tmp_path):
    import dataclasses

    from poslens.analyses.causal.options import HelixAblationOptions
    from poslens.cli.causal import ablate_helix_cmd
    from poslens.errors import InvalidInputError

    params = {p.name: p for p in ablate_helix_cmd.params}
    for f in dataclasses.fields(HelixAblationOptions):
        assert params[f.name].default == f.default, f.name
    with pytest.raises(InvalidInputError, match="did you mean 'n_random'"):
        QH.helix_ablation(load_weights(str(small)), n_randoms=3)
    # the older spellings --keep-first and --no-bos still parse and reach the analysis
    res = CliRunner().invoke(cli, ["ablate", "helix", "-m", str(small), "-o", str(tmp_path / "o"), "--keep-first",
                                   "--no-bos", "--positional-only", "--n-random", "3", "--seq-len", "32", "--json"])
    assert res.exit_code == 0, res.output
    o = json.loads(res.stdout)["options"]
    assert (o["skip_first"], o["prepend_bos"], o["n_random"]) == (False, False, 3)


def test_helix_on_real_gpt2_positional_inputs(partial_ckpt):
    """Real GPT-2 small, W_pos alone through layer 0: the helix subspace carries the previous-token attention."""
    r = QH.helix_ablation(load_weights(str(partial_ckpt)), n_random=3, seq_len=256)
    assert "no loss" in r.notes[0] and r.variance_share.helix_pca > 0.8
    P = r.prev_attention
    assert P.helix.effect < P.matched.effect - 3 * P.matched.baseline.std
    assert P.helix.effect < -0.5 * np.mean(list(r.clean_prev.values()))


# ----------------------------------------------------------------------------- CLI


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_patch_and_ablate(pdup, tmp_path):
    out = tmp_path / "p"
    res = _run(["patch", "-m", str(pdup.path), "--clean", "w1 w2 w3 w1", "--corrupted", "w4 w2 w3 w1",
                "--metric", "logit-diff:w2|w5", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["kind"] == "patching" and np.array(d["normalized"]).shape == (2, 5)
    assert {p.name for p in out.iterdir()} >= {"result.json", "patching_resid.png", "patching_resid.html"}
    res = _run(["patch", "-m", str(pdup.path), "--clean", "w1 w2 w3 w1", "--corrupted", "w4 w2 w3 w1",
                "--metric", "neuron:0.7", "--sweep", "heads", "-o", str(tmp_path / "h")])
    assert res.exit_code == 0 and "patching_heads.png" in res.output
    res = _run(["ablate", "run", "-m", str(pdup.path), "--head", "0.1", "--kind", "mean", "--data", "repeated",
                "--reference", "distinct", "--metric", "neuron:0.7", "--metric", "loss", "--n-seq", "4", "--seq-len", "32",
                "--n-baseline", "2", "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "a" / "result.json").read_text())
    assert r["kind"] == "ablation" and r["interventions"][0]["reference"] == "ref" and "loss" in r["effects"]


@pytest.mark.parametrize("args, msg", [
    (["patch", "--clean", "w1 w2 w3", "--corrupted", "w1 w2", "--metric", "neuron:0.7"], "same length"),
    (["patch", "--clean", "w1 w2", "--corrupted", "w1 w3", "--metric", "readout:blocks.0.hook_resid_psot:X.npy"],
     "cannot read"),
    (["ablate", "run", "--direction", "VEC", "--hook", "blocks.0.hook_resid_psot", "--data", "repeated"], "did you mean"),
    (["ablate", "run", "--direction", "BADVEC", "--hook", "blocks.0.hook_resid_post", "--data", "repeated"],
     "has 5 dimensions"),
    (["ablate", "run", "--head", "0.1", "--data", "repeated", "--metric", "logit-diff:w1|w2 w3"], "is 2 tokens"),
    (["ablate", "run", "--head", "0.1", "--data", "repeated", "--metric", "neuron:0.5000"], "neuron 0.5000 does not exist"),
    (["ablate", "run", "--head", "0.7", "--data", "repeated"], "head 7 does not exist"),
])
def test_cli_bad_input(pdup, tmp_path, args, msg):
    np.save(tmp_path / "vec.npy", np.ones(256))
    np.save(tmp_path / "bad.npy", np.ones(5))
    args = [str(tmp_path / "vec.npy") if a == "VEC" else str(tmp_path / "bad.npy") if a == "BADVEC" else a for a in args]
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, [*args, "-m", str(pdup.path), "-o", str(out), "--seq-len", "16"] if args[0] == "ablate"
                             else [*args, "-m", str(pdup.path), "-o", str(out)])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("poslens: error:") and msg in lines[0] and "Traceback" not in res.output
    assert not out.exists()


def test_causal_command_options_declared_once(pdup, tmp_path):
    """Every flag of ablate run / dup-neurons / word-index and patch is its Options field, default and
    choices included; the older spellings parse and reach the result's options."""
    import dataclasses

    from poslens.analyses.causal import options as O
    from poslens.cli.causal import ablate_dup_cmd, ablate_run_cmd, ablate_word_index_cmd, patch_cmd

    for cmd, cls in [(ablate_run_cmd, O.AblationOptions), (ablate_dup_cmd, O.DupNeuronAblationOptions),
                     (ablate_word_index_cmd, O.WordIndexAblationOptions), (patch_cmd, O.PatchOptions)]:
        params = {p.name: p for p in cmd.params}
        for f in dataclasses.fields(cls):
            default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            assert params[f.name].default == default, (cmd.name, f.name)
            if "choices" in f.metadata:
                assert tuple(params[f.name].type.choices) == f.metadata["choices"], (cmd.name, f.name)
    m = ["-m", str(pdup.path), "--json"]
    res = _run(["ablate", "dup-neurons", *m, "--heads", f"{pdup.head}", "--neurons", f"{pdup.neuron},3", "--no-bos",
                "--n-seq", "4", "--seq-len", "24", "--n-random", "2", "--kind", "zero", "-o", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["selected"] == [pdup.neuron, 3] and d["duplicate_heads"] == [f"0.{pdup.head}"]
    assert (d["options"]["prepend_bos"], d["options"]["kind"]) == (False, "zero")
    res = _run(["ablate", "run", *m, "--head", "0.1", "--positions", "-1", "--no-bos", "--data", "repeated",
                "--n-seq", "3", "--seq-len", "16", "--n-baseline", "2", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["interventions"][0]["positions"] == [-1]
    res = _run(["patch", *m, "--clean", "w1 w2 w3 w1", "--corrupted", "w4 w2 w3 w1", "--metric", "neuron:0.7",
                "--no-bos", "--layers", "1", "--positions", "0,3", "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert np.array(json.loads(res.stdout)["normalized"]).shape == (1, 2)
    for bad, msg in [(dict(kind="noise"), "kind must be one of zero, mean, resample"),
                     (dict(select="magic"), "select must be one of pvo, activation")]:
        with pytest.raises(InvalidInputError, match=msg):
            O.DupNeuronAblationOptions(**bad)
    with pytest.raises(InvalidInputError, match="C must be a positive number or auto"):
        O.WordIndexAblationOptions(C="-1")


# ----------------------------------------------------------------------------- report stage


def test_report_stage(pdup, partial_ckpt, tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_causal import STAGES

    _, (rep,) = build_report([str(pdup.path)], tmp_path / "r", stages=STAGES, size="quick", progress=False)
    st = {o.name: o for o in rep.outcomes}
    assert st["causal_dup_neurons"].status == "done" and st["causal_dup_neurons"].figures
    assert st["causal_helix"].status == "done" and st["causal_helix"].figures
    _, (rep2,) = build_report([str(partial_ckpt)], tmp_path / "g", stages=STAGES, size="quick", progress=False)
    st2 = {o.name: o for o in rep2.outcomes}
    assert st2["causal_helix"].status == "done" and "W_pos alone" in st2["causal_helix"].summary[-1]
    assert st2["causal_dup_neurons"].status == "skipped" and "wte.weight" in st2["causal_dup_neurons"].reason


# ----------------------------------------------------------------------------- word-index probes


def test_word_index_question_runs_end_to_end_on_tiny():
    from poslens.analyses.causal import question_word_index as QW
    from poslens.errors import InvalidInputError

    w = load_weights("tiny")
    r = QW.word_index_ablation(w, layer=1, n_train=700, n_val_prompts=60, n_random=2, n_pairs=8, dictionary_size=5000,
                               C=1.0)
    assert r.later == list(range(2, w.cfg.n_layers + 1)) and 1 <= r.subspace_rank <= 7
    for p, a in r.ablation.accuracy.items():
        assert 0 <= a.clean <= 1 and a.baseline.n == 2 and a.effect == pytest.approx(a.ablated - a.clean)
    sw = r.patching.sweep
    t = r.patching.pairs.position
    assert np.array(sw.normalized).shape == (r.options["patch_point"], t + 1)
    assert r.patching.pairs.a_index == 1 and r.patching.pairs.b_index == 2
    assert len(r.patching.pairs.example_a) == len(r.patching.pairs.example_b) == t + 1
    json.loads(r.to_json())
    # the summary's arrow goes from the clean value to the ablated one, never to the change
    text = "\n".join(QW.summarize(r))
    a = r.ablation.accuracy[str(r.layer)]
    assert f"accuracy {a.clean:.3f} → {a.ablated:.3f} ({a.effect:+.3f}; random" in text
    assert f"loss on the words {r.ablation.loss.clean:.3f} → {r.ablation.loss.ablated:.3f}" in text
    with pytest.raises(InvalidInputError, match="same number of tokens"):
        QW.word_index_ablation(w, lengths_a=(2, 1), lengths_b=(1, 1))
    with pytest.raises(InvalidInputError, match="later points must lie"):
        QW.word_index_ablation(w, layer=2, later=[1])
