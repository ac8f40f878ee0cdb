"""The trainer: loss falls, resume is exact, output loads in transformers, bad input is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from poslens.errors import CorpusError, InvalidInputError
from poslens.models import Runner, load_weights
from poslens.models.tokenizer import Tokenizer
from poslens.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    text = (SHARED / "data/corpora/kjv.txt").read_text()[:120_000]
    p = tmp_path_factory.mktemp("corpus") / "kjv_part.txt"
    p.write_text(text)
    return str(p)


def cfg(corpus: str, out: Path, **kw) -> TrainConfig:
    base = dict(
        corpus=[corpus], out=str(out), tokenizer="bpe", vocab_size=320, n_layers=1, n_heads=2, d_model=32,
        n_ctx=32, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=5, max_steps=40, eval_every=40,
        eval_batches=2, ckpt_every=1000, seed=3, dtype="float32", repeat_frac=0.25,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_goes_down_and_export_loads(corpus, tmp_path):
    model_dir = train(cfg(corpus, tmp_path / "run"), progress=False)
    import json

    log = json.loads((model_dir / "training_log.json").read_text())
    hist = log["history"]
    first = sum(h["loss"] for h in hist[:5]) / 5
    last = sum(h["loss"] for h in hist[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert hist[-1]["val_loss"] < log["unigram_cross_entropy_val"] + 0.5
    # The exported directory is a normal checkpoint with the model's own tokenizer.
    w = load_weights(str(model_dir))
    tok = Tokenizer.for_checkpoint(w.source)
    assert tok.vocab_size == w.cfg.d_vocab == 320
    ids = torch.tensor([tok.encode("In the beginning God created the heaven")])
    ours = Runner(w).run(ids, logits=True).logits
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = hf(ids).logits
    assert (ours - theirs).abs().max() < 1e-4


def test_resume_continues_exactly(corpus, tmp_path):
    straight = train(cfg(corpus, tmp_path / "a", max_steps=16), progress=False)
    c = cfg(corpus, tmp_path / "b", max_steps=16)
    train(c, progress=False, stop_at=4)  # in stages: to step 4, then 3 more steps, then the rest
    assert torch.load(tmp_path / "b" / "train_state.pt", weights_only=False)["log"]["step"] == 4
    # the same stage's command again trains nothing (it trained step 5); an earlier stage's is refused (it
    # trained one step past its stop with its own options)
    train(c, progress=False, stop_at=4)
    with pytest.raises(InvalidInputError, match="already at step 4, past --stop-at 3; give --stop-at >= 4"):
        train(c, progress=False, stop_at=3)
    assert torch.load(tmp_path / "b" / "train_state.pt", weights_only=False)["log"]["step"] == 4
    train(c, progress=False, stop_after=3)
    state = torch.load(tmp_path / "b" / "train_state.pt", weights_only=False)
    assert state["log"]["step"] == 7
    resumed = train(c, progress=False)
    a = load_weights(str(straight)).state_dict()
    b = load_weights(str(resumed)).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k



def test_a_run_restarted_before_its_first_checkpoint_logs_as_an_uninterrupted_one(corpus, tmp_path):
    import json
    import shutil

    straight = train(cfg(corpus, tmp_path / "a", max_steps=8), progress=False)
    c = cfg(corpus, tmp_path / "b", max_steps=8)
    train(c, progress=False, stop_at=2)
    # what a kill before the first checkpoint leaves: the run's tokenizer and tokens, no state, no model
    (tmp_path / "b" / "train_state.pt").unlink()
    shutil.rmtree(tmp_path / "b" / "model")
    logs = [json.loads((d / "training_log.json").read_text()) for d in (straight, train(c, progress=False))]
    # the restarted run named its tokenizer by the file it reloaded, .../b/tokenizer.json, in its log and card
    assert logs[1]["tokenizer"] == logs[0]["tokenizer"] == "byte-level BPE 320 trained on the corpus"
    assert logs[1]["history"] == logs[0]["history"]


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(ckpt_every=0), dict(d_model=-4), dict(val_frac=1.5),
                                 dict(lr=-1.0, min_lr=-2.0)])
def test_a_config_made_in_python_is_held_to_the_command_lines_ranges(corpus, tmp_path, bad):
    # these failed deep (an empty batch, a modulo by zero, torch's negative dimension) or trained on nonsense
    name = next(iter(bad))
    with pytest.raises(InvalidInputError, match=f"{name}={bad[name]} "):
        train(cfg(corpus, tmp_path / "r", **bad), progress=False)
    assert not (tmp_path / "r").exists()


def test_one_corpus_file_given_alone_is_one_file(corpus, tmp_path):
    # it was read as its letters: "corpus / does not exist"
    model = train(dataclasses.replace(cfg(corpus, tmp_path / "r", max_steps=2), corpus=corpus), progress=False)
    assert load_weights(str(model)).cfg.n_layers == 1

def test_a_floor_above_the_peak_rate_is_refused(corpus, tmp_path):
    # the cosine schedule climbed from lr to min_lr
    with pytest.raises(InvalidInputError, match="min_lr=0.0003 is above lr=0.0001"):
        train(cfg(corpus, tmp_path / "r", lr=1e-4), progress=False)
    assert not (tmp_path / "r").exists()

@pytest.fixture(autouse=True)
def _sigint_at_its_default():
    """Ctrl-C as a terminal delivers it: a process started in the background by a non-interactive
    shell (``cmd &`` in a script) inherits SIGINT ignored, and the trainer rightly leaves a handler
    it did not expect alone, so the Ctrl-C tests below would see nothing happen."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _press_ctrl_c_at(monkeypatch, at_step: int, also_while_saving: bool = False):
    """Send this process a real SIGINT while step ``at_step``'s batch is drawn (mid-step), and with
    ``also_while_saving`` a second one in the middle of the checkpoint it causes."""
    import os
    import signal

    import poslens.train.loop as L

    real_batch, real_save = L._batch, L.atomic_torch_save
    pressed = []

    def batch(cfg, rng, step, *a, **k):
        if step == at_step and not pressed:
            pressed.append(step)
            os.kill(os.getpid(), signal.SIGINT)
        return real_batch(cfg, rng, step, *a, **k)

    def save(obj, path):
        if also_while_saving and pressed:
            os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, path)

    monkeypatch.setattr(L, "_batch", batch)
    monkeypatch.setattr(L, "atomic_torch_save", save)


def test_ctrl_c_saves_the_current_step_and_resumes_exactly(corpus, tmp_path, monkeypatch, capsys):
    import signal

    from poslens.errors import Interrupted

    straight = train(cfg(corpus, tmp_path / "a", max_steps=8), progress=False)
    c = cfg(corpus, tmp_path / "b", max_steps=8)  # ckpt_every=1000: without the interrupt's save, nothing saved
    with monkeypatch.context() as m:
        _press_ctrl_c_at(m, at_step=4, also_while_saving=True)
        # KeyboardInterrupt, not Interrupted: a plain one must fail this test, not stop the test session
        with pytest.raises(KeyboardInterrupt, match=r"saved step 5 of 8 in .*train_state\.pt; run the same command") as exc:
            train(c, progress=False)
        assert exc.type is Interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert "saving a checkpoint" in capsys.readouterr().err  # the second press is answered, not obeyed
    assert torch.load(tmp_path / "b" / "train_state.pt", weights_only=False)["log"]["step"] == 5
    assert [p.name for p in (tmp_path / "b").iterdir() if p.name.endswith(".tmp")] == []
    resumed = train(c, progress=False)
    a = load_weights(str(straight)).state_dict()
    b = load_weights(str(resumed)).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_ctrl_c_says_where_it_saved_and_exits_130(corpus, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from poslens.cli import cli

    _press_ctrl_c_at(monkeypatch, at_step=2)
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", "-c", corpus, "--out", str(out), "--vocab-size", "300", "--n-layers", "1",
                                 "--n-heads", "2", "--d-model", "32", "--n-ctx", "32", "--batch-size", "4",
                                 "--max-steps", "8", "--eval-every", "8", "--eval-batches", "1"])
    assert r.exit_code == 130, r.output
    assert r.stderr.strip().splitlines()[-1] == (f"poslens: interrupted; saved step 3 of 8 in {out / 'train_state.pt'}; "
                                                 "run the same command to resume")
    assert torch.load(out / "train_state.pt", weights_only=False)["log"]["step"] == 3


def test_ctrl_c_while_the_tokens_are_saved_leaves_no_half_file(corpus, tmp_path, monkeypatch):
    import numpy as np

    real = np.savez

    def savez(path, **arrays):
        real(path, **arrays)
        raise KeyboardInterrupt  # written, not yet renamed into place

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(corpus, tmp_path / "run", max_steps=2), progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_resume_with_other_shape_is_refused_and_nothing_overwritten(corpus, tmp_path):
    c = cfg(corpus, tmp_path / "run", max_steps=4)
    train(c, progress=False)
    before = (tmp_path / "run" / "train_state.pt").read_bytes()
    with pytest.raises(InvalidInputError, match="d_model"):
        train(cfg(corpus, tmp_path / "run", max_steps=8, d_model=48), progress=False)
    assert (tmp_path / "run" / "train_state.pt").read_bytes() == before
    log = (tmp_path / "run" / "model" / "training_log.json").read_bytes()
    with pytest.raises(InvalidInputError, match="already at step 4, past --max-steps 2"):
        train(cfg(corpus, tmp_path / "run", max_steps=2), progress=False)
    assert (tmp_path / "run" / "train_state.pt").read_bytes() == before
    assert (tmp_path / "run" / "model" / "training_log.json").read_bytes() == log


def test_an_export_killed_midway_leaves_the_previous_model_whole(corpus, tmp_path, monkeypatch):
    """model/ is swapped in whole: a crash after the new weights are written keeps the last complete
    export (not step 6's weights under step 4's log), with its history; the next run cleans what
    killed exports and snapshots leave."""
    import json

    import poslens.models.save as S

    c = cfg(corpus, tmp_path / "run", max_steps=8, snapshots=3)
    model = train(c, progress=False, stop_at=4)
    before = {n: (model / n).read_bytes() for n in ("config.json", "model.safetensors", "training_log.json")}

    def crash(path, text):
        raise OSError("killed after the weights")

    with monkeypatch.context() as m:
        m.setattr(S, "atomic_write_text", crash)  # config.json, written after model.safetensors
        with pytest.raises(OSError, match="killed after the weights"):
            train(c, progress=False, stop_at=6)
    assert torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)["log"]["step"] == 6
    assert {n: (model / n).read_bytes() for n in before} == before
    assert load_weights(str(model)).cfg.n_layers == 1 and (model / "history" / "manifest.json").is_file()
    # what a SIGKILL mid-export and mid-snapshot (of a step this run does not snapshot) would leave
    (tmp_path / "run" / ".model.new").mkdir()
    (tmp_path / "run" / ".model.new" / "config.json").write_text("{}")
    (model / "history" / ".step-000005.new").mkdir()
    train(c, progress=False)
    assert json.loads((model / "training_log.json").read_text())["step"] == 8
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []
    assert sorted(p.name for p in (model / "history").iterdir() if p.name.startswith(".")) == []
    assert [s["step"] for s in json.loads((model / "history" / "manifest.json").read_text())["snapshots"]] == \
        [0, 1, 3, 8]


def test_the_final_step_is_saved_and_exported_once(corpus, tmp_path, monkeypatch):
    """Reaching max_steps saves and exports once; a rerun of a finished run exports again (its last
    export may have been killed), and nothing else."""
    import shutil

    import poslens.train.loop as L

    saved, exported = [], []
    real_save, real_export = L.atomic_torch_save, L.export
    monkeypatch.setattr(L, "atomic_torch_save", lambda obj, path: (saved.append(obj["log"]["step"]), real_save(obj, path)))
    monkeypatch.setattr(L, "export", lambda model, tok, dest, log: (exported.append(log["step"]),
                                                                     real_export(model, tok, dest, log)))
    c = cfg(corpus, tmp_path / "run", max_steps=8, ckpt_every=4)
    model = train(c, progress=False)
    assert saved == exported == [4, 8]
    shutil.rmtree(model)
    train(c, progress=False)
    assert saved == exported == [4, 8, 8]
    assert load_weights(str(model)).cfg.n_layers == 1


def test_bad_corpora(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(CorpusError, match="empty"):
        train(cfg(str(empty), tmp_path / "r1"), progress=False)
    with pytest.raises(CorpusError, match="does not exist"):
        train(cfg(str(tmp_path / "nope.txt"), tmp_path / "r2"), progress=False)
    small = tmp_path / "small.txt"
    small.write_text("a few words only, far fewer than one context window of tokens\n" * 3)
    with pytest.raises(CorpusError, match="context window"):
        train(cfg(str(small), tmp_path / "r3", n_ctx=256, vocab_size=300), progress=False)
    assert not (tmp_path / "r3" / "model").exists()
    with pytest.raises(InvalidInputError, match="n_ctx=70000"):
        train(cfg(corpus_big(tmp_path), tmp_path / "r4", n_ctx=70000), progress=False)
    assert not (tmp_path / "r4" / "model").exists()
    with pytest.raises(CorpusError, match="vocab_size 290 is too small for a byte-level BPE; give at least 300"):
        train(cfg(corpus_big(tmp_path), tmp_path / "r5", vocab_size=290), progress=False)  # it said "needs > 257"


def corpus_big(tmp_path) -> str:
    p = tmp_path / "big.txt"
    p.write_text((SHARED / "data/corpora/kjv.txt").read_text()[:20_000])
    return str(p)


def test_cli_train_error_exit_code(tmp_path):
    from click.testing import CliRunner

    from poslens.cli import cli

    r = CliRunner().invoke(cli, ["train", "-c", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "does not exist" in r.output and "Traceback" not in r.output


def test_repeated_spans_in_batches():
    """Natural and random repeats: each row holds a span twice; random spans avoid BOS; deterministic."""
    import numpy as np

    from poslens.train.corpus import batch

    ids = (np.arange(50_000) * 7919 % 4000 + 1).astype(np.int64)  # no BOS in the text
    x = batch(ids, np.random.default_rng(5), 8, 64, repeat_frac=0.25, random_repeat_frac=0.5, vocab=4096, exclude=0)
    assert np.array_equal(x, batch(ids, np.random.default_rng(5), 8, 64, 0.25, 0.5, 4096, 0))
    for r in range(6):  # 2 natural + 4 random repeats
        row = x[r]
        found = any(np.array_equal(row[a:a + L], row[b:b + L])
                    for L in range(8, 22) for a in range(0, 65 - 2 * L + 1) for b in range(a + L, 65 - L + 1))
        assert found, r
    assert (x[2:6] != 0).all()
    plain = batch(ids, np.random.default_rng(5), 8, 64)  # no repeats asked: contiguous windows of the text
    for row in plain:
        starts = np.flatnonzero(ids[: len(ids) - 64] == row[0])
        assert any(np.array_equal(ids[s:s + 65], row) for s in starts)


def test_stages_record_changed_options(corpus, tmp_path):
    import json

    c = cfg(corpus, tmp_path / "run", max_steps=8, repeat_frac=0.0)
    train(c, progress=False, stop_at=4)
    train(c, progress=False, stop_at=5)  # same options: the same stage
    out = train(cfg(corpus, tmp_path / "run", max_steps=8, repeat_frac=0.0, random_repeat_frac=0.5, weight_decay=0.01),
                progress=False)
    stages = json.loads((out / "training_log.json").read_text())["stages"]
    assert [s["from_step"] for s in stages] == [0, 5]
    assert stages[1]["options"]["random_repeat_frac"] == 0.5 and stages[1]["options"]["weight_decay"] == 0.01
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    # the model card renders one command per stage, measured with poslens's own analyses
    from poslens.train.card import write_card

    card = write_card(out).read_text()
    cmds = [l for l in card.splitlines() if l.startswith("poslens train")]
    assert len(cmds) == 2 and cmds[0].endswith("--stop-at 5") and "-c $CORPORA/kjv_part.txt" in cmds[0] and "--stop-at" not in cmds[1]
    assert "--random-repeat-frac 0.5" in cmds[1] and "--weight-decay 0.01" in cmds[1]
    assert "nats/token" in card and "top 3 principal components hold" in card and "| 0 |" in card
    assert "(float32, no autocast)" in card and "bfloat16" not in card  # the card names how it computed


def test_sinusoidal_wpe_init_is_the_rescaled_table_and_is_recorded(corpus, tmp_path):
    import numpy as np

    from poslens.analyses.sinusoidal import sinusoidal_encoding
    from poslens.train.model import TrainableGPT2
    from poslens.testing import small_config

    mcfg = small_config()
    m = TrainableGPT2(mcfg, wpe_init_scale=0.5, wpe_init="sinusoidal")
    m.init_weights(torch.Generator().manual_seed(0))
    W = m.wpe.weight.detach().double().numpy()
    pe = sinusoidal_encoding(mcfg.n_ctx, mcfg.d_model)
    assert abs(W.std() - 0.01) < 1e-6  # GPT-2's 0.02 times the scale
    assert np.allclose(W / W.std(), pe / pe.std(), atol=1e-5)
    # a run records the choice in its training log, and a sinusoidal W_pos trains like any other
    model_dir = train(cfg(corpus, tmp_path / "s", wpe_init="sinusoidal", wpe_init_scale=1.0, max_steps=10), progress=False)
    import json

    log = json.loads((model_dir / "training_log.json").read_text())
    assert log["stages"][0]["options"]["wpe_init"] == "sinusoidal"


def test_synthetic_batch_rows_are_repeats_and_lag_two_copies():
    import numpy as np

    from poslens.train.corpus import synthetic_batch

    x = synthetic_batch(np.random.default_rng(2), 16, 64, 50, exclude=0)
    assert x.shape == (16, 65) and (x != 0).all() and (x < 50).all()
    assert np.array_equal(x, synthetic_batch(np.random.default_rng(2), 16, 64, 50, exclude=0))
    periods = [next(L for L in range(8, 33) if np.array_equal(row[L:], row[:-L])) for row in x[0::2]]
    assert len(set(periods)) > 1  # span lengths vary between windows
    for row in x[1::2]:  # ~0.7 / 1.7 of the tokens repeat the one two places back; not periodic
        copy = row[2:] == row[:-2]
        assert 0.3 < copy.mean() < 0.55, copy.mean()
        assert not np.array_equal(row[2:], row[:-2])
        # copies do not chain (chains let three-back heads build a shifted copying circuit); a coincidence can
        assert (copy[2:] & copy[:-2]).mean() < 0.05


def test_synthetic_steps_come_first_and_are_recorded(corpus, tmp_path, monkeypatch):
    import json

    import poslens.train.corpus as C

    calls = []
    real_syn, real_batch = C.synthetic_batch, C.batch
    monkeypatch.setattr(C, "synthetic_batch", lambda *a, **k: calls.append("syn") or real_syn(*a, **k))
    monkeypatch.setattr(C, "batch", lambda ids, *a, **k: calls.append("text" if len(ids) > 5000 else "val")
                        or real_batch(ids, *a, **k))
    out = train(cfg(corpus, tmp_path / "run", max_steps=6, synthetic_steps=3), progress=False)
    assert [c for c in calls if c != "val"] == ["syn"] * 3 + ["text"] * 3
    log = json.loads((out / "training_log.json").read_text())
    assert log["stages"][0]["options"]["synthetic_steps"] == 3
    from poslens.train.card import commands

    assert "--synthetic-steps 3" in commands(log)[1]
    with pytest.raises(InvalidInputError, match="synthetic_steps"):
        train(cfg(corpus, tmp_path / "bad", max_steps=6, synthetic_steps=7), progress=False)
    assert not (tmp_path / "bad").exists()


def test_synthetic_vocab_draws_rows_from_the_most_frequent_tokens(corpus, tmp_path, monkeypatch):
    import json

    import numpy as np

    import poslens.train.loop as L

    seen = []
    real = L._batch
    monkeypatch.setattr(L, "_batch", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    out = train(cfg(corpus, tmp_path / "run", max_steps=3, synthetic_steps=3, synthetic_vocab=20), progress=False)
    ids = np.load(tmp_path / "run" / "tokens.npz")["train"]
    tok = Tokenizer.from_file(tmp_path / "run" / "tokenizer.json")
    counts = np.bincount(ids, minlength=tok.vocab_size)
    used = np.unique(np.concatenate([x.ravel() for x in seen]))
    assert len(used) <= 20 and tok.bos_token_id not in used
    # every token used is at least as frequent in the text as the 20th most frequent non-BOS token
    ranked = np.sort(np.delete(counts, tok.bos_token_id))[::-1]
    assert counts[used].min() >= ranked[19]
    log = json.loads((out / "training_log.json").read_text())
    from poslens.train.card import _synthetic_lines

    assert "20 most frequent tokens" in _synthetic_lines(log)[0]
    with pytest.raises(InvalidInputError, match="synthetic_vocab=5"):
        train(cfg(corpus, tmp_path / "bad", max_steps=3, synthetic_vocab=5), progress=False)
    assert not (tmp_path / "bad").exists()


def test_attn_only_holds_every_mlp_at_zero_and_exports_gpt2(corpus, tmp_path):
    out = train(cfg(corpus, tmp_path / "run", max_steps=4, n_layers=2, attn_only=True), progress=False)
    w = load_weights(str(out))
    for l in range(2):
        for name in ("mlp.W_in", "mlp.W_out", "mlp.b_in", "mlp.b_out"):
            assert not w.get(f"blocks.{l}.{name}").any(), name
    assert not torch.equal(w.get("blocks.0.attn.W_Q"), load_weights(str(train(
        cfg(corpus, tmp_path / "zero", max_steps=1, n_layers=2, attn_only=True), progress=False))).get("blocks.0.attn.W_Q"))
    toks = torch.randint(0, w.cfg.d_vocab, (1, 16))
    assert not Runner(w).run(toks, hooks=["blocks.1.hook_mlp_out"])["blocks.1.hook_mlp_out"].any()
    import json

    from poslens.train.card import commands

    cmd = commands(json.loads((out / "training_log.json").read_text()))[1]
    assert " --attn-only" in cmd and "True" not in cmd
    with pytest.raises(InvalidInputError, match="attn_only"):  # a resume cannot change the architecture
        train(cfg(corpus, tmp_path / "run", max_steps=6, n_layers=2, attn_only=False), progress=False)


def test_init_std_scales_the_attention_and_mlp_matrices_only():
    from poslens.testing import small_config
    from poslens.train.model import TrainableGPT2

    mcfg = small_config(n_layers=2, d_model=64)
    stds = {}
    for init in (0.02, 0.08):
        m = TrainableGPT2(mcfg, init_std=init)
        m.init_weights(torch.Generator().manual_seed(0))
        stds[init] = {n: float(p.detach().std()) for n, p in m.named_parameters() if p.dim() == 2}
    for name, s in stds[0.08].items():
        ratio = s / stds[0.02][name]
        if name.startswith("h."):
            assert ratio == pytest.approx(4.0, rel=0.1), name  # c_attn, c_fc and the residual projections
        else:
            assert ratio == pytest.approx(1.0), name  # wte, wpe keep GPT-2's std


def test_snapshots_are_log_spaced_float16_checkpoints_with_a_manifest(corpus, tmp_path):
    """--snapshots writes step 0 and log-spaced steps as loadable float16 folders; a resume adds none twice."""
    import json

    from safetensors import safe_open

    from poslens.analyses.helix import helix_sweep
    from poslens.train.history import read_manifest, snapshot_dirs, snapshot_steps

    c = cfg(corpus, tmp_path / "run", max_steps=12, snapshots=5)
    train(c, progress=False, stop_at=5)
    out = train(c, progress=False)
    want = snapshot_steps(5, 12)
    assert want[0] == 0 and want[-1] == 12 and len(set(want)) == 6
    man = read_manifest(out)
    assert [s["step"] for s in man["snapshots"]] == want and man["dtype"] == "float16"
    assert [s["tokens_seen"] for s in man["snapshots"]] == [s * 8 * 32 for s in want]
    assert all(s["val_loss"] > 0 for s in man["snapshots"])
    dirs = snapshot_dirs(out)
    with safe_open(str(dirs[-1][1] / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    # the last snapshot is the final model, rounded to half precision
    final = load_weights(str(out)).state_dict()
    last = load_weights(str(dirs[-1][1])).state_dict()
    for k in final:
        assert torch.allclose(final[k], last[k].float(), atol=1e-3, rtol=1e-3), k
    first = load_weights(str(dirs[0][1])).state_dict()
    assert not torch.allclose(first["embed.W_E"].float(), final["embed.W_E"], atol=1e-3)  # step 0 is the initialisation
    # a helix sweep reads the steps from the folder names, whatever order it is given
    sw = helix_sweep([str(d) for _, d in reversed(dirs)])
    assert [r.step for r in sw.table] == want
    log = json.loads((out / "training_log.json").read_text())
    assert log["config"]["snapshots"] == 5
    assert (tmp_path / "run" / "tokens.npz").is_file()  # the tokenised corpus a resume reuses
    # `poslens helix --sweep -m MODEL` on one trained model sweeps its history
    from click.testing import CliRunner

    from poslens.cli import cli

    r = CliRunner().invoke(cli, ["helix", "--sweep", "-m", str(out), "--no-figures", "-o", str(tmp_path / "hx")])
    assert r.exit_code == 0, r.output
    table = json.loads((tmp_path / "hx" / "result.json").read_text())["table"]
    assert [row["step"] for row in table] == want
    assert json.loads((dirs[2][1] / "training_log.json").read_text())["tokens_seen"] == want[2] * 8 * 32
    # ... and so do both sweeps given the run's --out, as the README writes them (`-m runs/mine`)
    from poslens.sweep.grid import revisions

    run = str(tmp_path / "run")
    r = CliRunner().invoke(cli, ["helix", "--sweep", "-m", run, "--no-figures", "-o", str(tmp_path / "hx2")])
    assert r.exit_code == 0, r.output
    assert [row["step"] for row in json.loads((tmp_path / "hx2" / "result.json").read_text())["table"]] == want
    assert [(v.step, v.spec) for v in revisions(run)] == [(s, str(d)) for s, d in dirs]


def test_wpe_freeze_and_lr_scale(corpus, tmp_path):
    """W_pos stays at its initialisation while frozen (the rest trains), then moves; scale 0 keeps it for good."""
    c = cfg(corpus, tmp_path / "f", max_steps=8, wpe_freeze_steps=4, wpe_init="sinusoidal", wpe_init_scale=1.0)
    init = load_weights(str(train(c, progress=False, stop_at=0 + 1))).state_dict()
    at4 = load_weights(str(train(c, progress=False, stop_at=4))).state_dict()
    end = load_weights(str(train(c, progress=False))).state_dict()
    assert torch.equal(init["pos_embed.W_pos"], at4["pos_embed.W_pos"]) and not torch.equal(init["embed.W_E"], at4["embed.W_E"])
    assert not torch.equal(at4["pos_embed.W_pos"], end["pos_embed.W_pos"])
    still = load_weights(str(train(cfg(corpus, tmp_path / "z", max_steps=6, wpe_lr_scale=0.0), progress=False)))
    from poslens.train.model import TrainableGPT2
    from poslens.train.loop import model_config

    m = TrainableGPT2(model_config(cfg(corpus, tmp_path / "z"), Tokenizer.from_file(tmp_path / "z" / "tokenizer.json")),
                      0.1, "normal")
    m.init_weights(torch.Generator().manual_seed(3))
    assert torch.equal(still.state_dict()["pos_embed.W_pos"], m.wpe.weight.detach())


def test_frozen_layers_keep_their_weights_for_a_stage(corpus, tmp_path):
    """A stage with --freeze-layers 1 leaves block 1 exactly as it was while block 0 trains; the next stage
    (no freeze, resumed with the optimizer state) moves it again."""
    c = cfg(corpus, tmp_path / "fz", n_layers=2, max_steps=8)
    before = load_weights(str(train(c, progress=False, stop_at=3))).state_dict()
    frozen = load_weights(str(train(dataclasses.replace(c, freeze_layers="1"), progress=False, stop_at=6))).state_dict()
    after = load_weights(str(train(c, progress=False))).state_dict()
    b1 = [k for k in before if k.startswith("blocks.1.") and before[k].is_floating_point()]
    assert b1 and all(torch.equal(before[k], frozen[k]) for k in b1)
    assert not torch.equal(before["blocks.0.attn.W_Q"], frozen["blocks.0.attn.W_Q"])
    assert not torch.equal(frozen["blocks.1.attn.W_Q"], after["blocks.1.attn.W_Q"])
    with pytest.raises(InvalidInputError, match="layers are 0..1"):
        train(dataclasses.replace(c, freeze_layers="2"), progress=False)
    with pytest.raises(InvalidInputError, match="comma-separated layer indices"):
        train(dataclasses.replace(c, freeze_layers="last"), progress=False)
    held = load_weights(str(train(dataclasses.replace(c, max_steps=10, freeze_layers="1,unembed"), progress=False))).state_dict()
    for k in ("embed.W_E", "ln_final.w", "ln_final.b", "blocks.1.attn.W_Q"):
        assert torch.equal(after[k], held[k]), k
    assert not torch.equal(after["blocks.0.attn.W_Q"], held["blocks.0.attn.W_Q"])


def test_reinit_heads_redraws_only_those_heads_once_per_stage(corpus, tmp_path):
    """--reinit-heads draws the named heads afresh when the stage starts (their Q/K/V columns and
    output rows change, nothing else does), and resuming that stage does not draw them again."""
    c = cfg(corpus, tmp_path / "ri", n_layers=2, max_steps=6)
    before = load_weights(str(train(c, progress=False, stop_at=3))).state_dict()
    still = dataclasses.replace(c, reinit_heads="1.0", lr=0.0, min_lr=0.0)  # the stage's one step moves nothing
    redrawn = load_weights(str(train(still, progress=False, stop_at=4))).state_dict()
    dh = before["blocks.1.attn.W_Q"].shape[-1]
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        b, r = before[f"blocks.1.attn.{name}"], redrawn[f"blocks.1.attn.{name}"]
        assert not torch.equal(b[0], r[0]) and torch.equal(b[1:], r[1:]), name
    same = [k for k in before if not k.startswith("blocks.1.attn.") and before[k].is_floating_point()]
    assert all(torch.equal(before[k], redrawn[k]) for k in same)
    assert redrawn["blocks.1.attn.W_Q"][0].std() == pytest.approx(c.init_std, rel=0.3) and dh
    again = load_weights(str(train(still, progress=False, stop_at=5))).state_dict()
    assert torch.equal(again["blocks.1.attn.W_Q"], redrawn["blocks.1.attn.W_Q"])
    with pytest.raises(InvalidInputError, match="layer.head"):
        train(dataclasses.replace(c, reinit_heads="1"), progress=False)
    with pytest.raises(InvalidInputError, match="layer.head"):
        train(dataclasses.replace(c, reinit_heads="0.9"), progress=False)


def test_synthetic_frac_keeps_synthetic_rows_after_the_start(corpus, tmp_path, monkeypatch):
    import poslens.train.corpus as C

    sizes = []
    real_syn = C.synthetic_batch
    monkeypatch.setattr(C, "synthetic_batch",
                        lambda rng, n, ctx, *a, **k: sizes.append((n, ctx)) or real_syn(rng, n, ctx, *a, **k))
    train(cfg(corpus, tmp_path / "run", max_steps=5, synthetic_steps=2, synthetic_frac=0.25), progress=False)
    assert sizes == [(8, 32)] * 2 + [(2, 32)] * 3
    sizes.clear()  # a short-window start: the same tokens per step in more rows
    train(cfg(corpus, tmp_path / "short", max_steps=3, synthetic_steps=2, synthetic_len=16), progress=False)
    assert sizes == [(16, 16)] * 2
    with pytest.raises(InvalidInputError, match="synthetic_len"):
        train(cfg(corpus, tmp_path / "bad", synthetic_len=64), progress=False)
    with pytest.raises(InvalidInputError, match="synthetic_frac"):
        train(cfg(corpus, tmp_path / "bad", synthetic_frac=1.5), progress=False)


def test_incontext_gain_and_history_scores(corpus, tmp_path):
    """The copy losses average each copy's tokens 2..; a random model gains nothing; history scores every snapshot."""
    from poslens.testing import random_checkpoint
    from poslens.train import measures as M

    g = M.incontext_gain(random_checkpoint(tmp_path / "rand"), n_seq=4, seq_len=64)
    assert abs(g["gain"]) < 0.1 and abs(g["first"] - g["uniform"]) < 1.0
    out = train(cfg(corpus, tmp_path / "run", max_steps=6, snapshots=3), progress=False)
    h = M.history_scores(out, n_seq=2)
    assert [r["step"] for r in h["rows"]] == [0, 1, 2, 6]
    assert set(h["formation"]) == set(M.TARGETS)
    assert all(0 <= r["prev"] <= 1 and 0 <= r["wpe_top3"] <= 1 for r in h["rows"])
    rows = [{"step": s, "prev": v} for s, v in [(0, 0.1), (1, 0.85), (2, 0.7), (3, 0.9), (4, 0.95)]]
    f = M.formation(rows, "prev")
    assert f["formed_at"] == 3 and f["largest_jump"] == {"from_step": 0, "to_step": 1, "change": pytest.approx(0.75)}


def test_measures_take_what_every_analysis_takes():
    from poslens.train import measures as M

    with pytest.raises(InvalidInputError, match="mechanism_scores takes the model's Weights, a model name or a "
                                                "checkpoint directory; got int"):
        M.mechanism_scores(3)


def test_lag2perm_rows_place_the_permuted_token_two_later():
    import numpy as np

    from poslens.train.corpus import lag2_permutation, synthetic_batch

    perm = lag2_permutation(500)
    assert sorted(perm.tolist()) == list(range(500)) and not (perm == np.arange(500)).any()
    assert (lag2_permutation(500) == perm).all()  # fixed: the same in every run
    x = synthetic_batch(np.random.default_rng(2), 16, 128, 500, exclude=0, kinds=("lag2perm",))
    hit = (x[:, 2:] == perm[x[:, :-2]]).mean()
    plain = (x[:, 2:] == x[:, :-2]).mean()
    assert 0.3 < hit < 0.7 and plain < 0.02  # about half the positions (0.7, never a copy of a copy); no plain copies


def test_synthetic_kinds_help_names_every_kind():
    # tiny-attn's card and the README name dupdist and reverse; the help had stopped at dup
    from click.testing import CliRunner

    from poslens.cli import cli
    from poslens.train.corpus import SYNTHETIC_KINDS

    text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    help_ = text.split("--synthetic-kinds TEXT", 1)[1].split("[default:", 1)[0]
    assert all(k in help_ for k in SYNTHETIC_KINDS), help_


def test_synthetic_dup_rows_mark_every_repeated_token():
    """Each copy is followed by the marker and no token occurs three times, so the earlier copy is never
    followed by a marker (an induction head cannot predict one); ``dupdist`` marks near and far copies apart."""
    import numpy as np

    from poslens.train.corpus import NEAR, synthetic_batch

    x = synthetic_batch(np.random.default_rng(4), 8, 128, 500, exclude=0, kinds=("dup", "lag2", "repeat", "dupdist"))
    assert x.shape == (8, 129) and (x != 0).all()
    for r, row in enumerate(x):
        if r % 4 not in (0, 3):
            continue
        markers = (499,) if r % 4 == 0 else (498, 499)
        seen: dict[int, int] = {}
        n_marked = {m: 0 for m in markers}
        for i, t in enumerate(row[:-1].tolist()):
            if t in markers:
                continue
            nxt = int(row[i + 1])
            if t in seen:
                want = markers[0] if len(markers) == 1 else (498 if i - seen[t] <= NEAR else 499)
                assert nxt == want, (r, i)
                assert row[seen[t] + 1] not in markers  # the earlier copy is not followed by a marker
                n_marked[want] += 1
            else:
                assert nxt not in markers, (r, i)
            assert list(row[: i + 1]).count(t) <= 2
            seen[t] = i
        assert min(n_marked.values()) > 2, n_marked
    # reverse rows: a recited token is followed by a recited one only as the predecessor of its first occurrence
    x = synthetic_batch(np.random.default_rng(5), 4, 128, 500, exclude=0, kinds=("reverse",))
    n_rule = 0
    for row in x.tolist():
        first: dict[int, int] = {}
        for i, t in enumerate(row):
            assert t != 0 and row[: i + 1].count(t) <= 2
            if t in first and i + 1 < len(row) and row[i + 1] in first and row[i + 1] != t:
                assert row[i + 1] == row[first[t] - 1], i
                n_rule += 1
            first.setdefault(t, i)
    assert n_rule > 20
    with pytest.raises(ValueError, match="kinds"):
        synthetic_batch(np.random.default_rng(0), 2, 16, 50, kinds=("nope",))


def test_induction_gain_separates_order_from_a_bag_of_seen_tokens(tmp_path):
    """A model that only favours tokens already in the context (uniform attention copying each
    token's embedding out) lowers the second copy's loss without reading order: the gain is
    large, its order-dependent part ~0."""
    from poslens.testing import random_state_dict, small_config, write_checkpoint
    from poslens.train import measures as M

    cfg = small_config(n_layers=1, n_heads=1, d_model=64, d_vocab=200, n_ctx=64)
    sd = {k: torch.zeros_like(v) if k.startswith(("h.0.", "wpe")) else v for k, v in random_state_dict(cfg, seed=0).items()}
    E = torch.nn.functional.normalize(torch.randn(cfg.d_vocab, cfg.d_model), dim=-1) * 4.0
    sd["wte.weight"] = E
    for name in ("ln_1", "ln_2"):
        sd[f"h.0.{name}.weight"] = torch.ones(cfg.d_model)
    eye = torch.eye(cfg.d_model)
    sd["h.0.attn.c_attn.weight"] = torch.cat([0 * eye, 0 * eye, eye], 1)  # Q = K = 0: uniform attention; V = x
    sd["h.0.attn.c_proj.weight"] = 8.0 * eye  # the context bag outweighs the token itself
    g = M.incontext_gain(write_checkpoint(tmp_path / "bag", cfg, sd), n_seq=8, seq_len=64)
    assert g["gain"] > 0.3, g
    assert abs(g["induction_gain"]) < 0.1 * g["gain"], g



def test_copy_gain_takes_what_the_analyses_take():
    from poslens.analyses.incontext import copy_gain
    from poslens.data.sequences import repeated_tokens

    tokens = repeated_tokens(2, 32, 1024, bos=0)
    want = copy_gain(Runner(load_weights("tiny")), tokens, bos=True)
    assert copy_gain("tiny", tokens.tolist(), bos=True) == want  # 'str' object has no attribute 'run'
    with pytest.raises(InvalidInputError, match="copy_gain takes a Runner"):
        copy_gain(3, tokens, bos=True)

def test_ship_copies_the_model_and_history_and_writes_the_card(corpus, tmp_path):
    """What ships is what a reader needs (no trainer state), the card names the organism and dates W_pos's shape."""
    from poslens.models import load_weights
    from poslens.train.history import snapshot_dirs
    from poslens.train.ship import ship

    out = train(cfg(corpus, tmp_path / "run", max_steps=6, snapshots=3), progress=False)
    dest = ship(out, "tiny-attn", tmp_path / "embedded")
    assert dest == tmp_path / "embedded" / "tiny-attn" and not (dest.parent / "tiny-attn.shipping").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["MODEL.md", "config.json", "history", "model.safetensors",
                                                     "tokenizer.json", "training_log.json"]
    assert [s for s, _ in snapshot_dirs(dest)] == [0, 1, 2, 6]
    assert load_weights(str(dest / "history" / "step-000006")).cfg.n_layers == 1
    card = (dest / "MODEL.md").read_text()
    assert card.startswith("# poslens-tiny-attn (`tiny-attn`)") and "--out runs/tiny-attn" in card
    assert "W_pos and the previous-token head" in card or "W_pos never reaches" in card
    assert "with central-difference derivatives" in card and "Savitzky–Golay" in card  # both ODE fits, not one
    with pytest.raises(InvalidInputError, match="not a poslens train export"):
        ship(tmp_path / "run", "x", tmp_path / "embedded")


def test_card_says_which_heads_were_redrawn_and_what_was_held():
    from poslens.train.card import _synthetic_lines

    base = {"synthetic_steps": 10, "synthetic_kinds": "dup", "n_ctx": 32, "synthetic_len": 0, "synthetic_frac": 0.0}
    log = {"step": 10, "stages": [{"from_step": 0, "options": dict(base)},
                                  {"from_step": 5, "options": {**base, "synthetic_kinds": "lag2perm",
                                                               "reinit_heads": "0.1,0.3", "freeze_layers": "1,unembed"}}]}
    text = " ".join(_synthetic_lines(log))
    assert "At step 5 head(s) 0.1,0.3 were drawn afresh." in text
    assert "Layer(s) 1 and the token (un)embedding and final LayerNorm held fixed." in text


def test_card_describes_each_stage_of_an_interleaved_curriculum():
    from poslens.train.card import _synthetic_lines

    base = {"synthetic_steps": 10, "synthetic_kinds": "repeat", "n_ctx": 32, "synthetic_frac": 0.0}
    log = {"step": 40, "stages": [
        {"from_step": 0, "options": dict(base)},
        {"from_step": 10, "options": {**base, "synthetic_frac": 0.5, "synthetic_kinds": "lag2"}},
        {"from_step": 20, "options": {**base, "synthetic_steps": 30, "synthetic_kinds": "reverse",
                                      "freeze_layers": "0", "wpe_lr_scale": 0.0}},
        {"from_step": 30, "options": {**base, "synthetic_steps": 30, "synthetic_frac": 0.0}}]}
    lines = _synthetic_lines(log)
    bullets = [x for x in lines if x.startswith("- ")]
    assert len(bullets) == 4
    assert bullets[0].startswith("- Steps 0–10: no text") and "a span repeated" in bullets[0]
    assert bullets[1].startswith("- Steps 10–20: text, with a 50% share") and "lag-2" in bullets[1]
    assert bullets[2].startswith("- Steps 20–30: no text") and "recited backwards" in bullets[2]
    assert "Layer(s) 0 held fixed." in bullets[2] and "W_pos was not updated." in bullets[2]
    assert bullets[3] == "- Steps 30–40: text only."
    text_only = {"step": 5, "config": {"synthetic_steps": 0, "synthetic_frac": 0.0, "n_ctx": 32}}
    assert _synthetic_lines(text_only) == []


@pytest.mark.parametrize("tool", ["card", "ship"])
def test_card_and_ship_commands_refuse_a_folder_that_is_no_run_in_one_line(tool, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"poslens.train.{tool}").main
    with pytest.raises(SystemExit) as exc:  # a traceback ending in FileNotFoundError or InvalidInputError
        main([str(tmp_path / "nope"), *(["x"] if tool == "ship" else [])])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"python -m poslens.train.{tool}: error: {tmp_path / 'nope'}")
    assert "Traceback" not in err


def test_a_damaged_saved_state_is_one_clear_error_and_a_damaged_token_cache_is_rebuilt(corpus, tmp_path):
    # both were tracebacks: torch.load's zip error, numpy's refusal of pickled data
    c = cfg(corpus, tmp_path / "run", max_steps=2)
    train(c, progress=False)
    state = tmp_path / "run" / "train_state.pt"
    good = state.read_bytes()
    for damage in (good[:1000], b"garbage\n"):
        state.write_bytes(damage)
        with pytest.raises(InvalidInputError, match=r"train_state.pt cannot be read as a run's saved state .*move it "
                                                    r"away to start this run from step 0"):
            train(dataclasses.replace(c, max_steps=3), progress=False)
    state.write_bytes(good)
    tokens = tmp_path / "run" / "tokens.npz"
    ids = np.load(tokens)["train"]
    tokens.write_bytes(tokens.read_bytes()[:3000])
    train(dataclasses.replace(c, max_steps=3), progress=False)
    assert np.array_equal(np.load(tokens)["train"], ids)
