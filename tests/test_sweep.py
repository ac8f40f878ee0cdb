"""`poslens sweep`: revision choice, the content-addressed store, change points, integrity flags,
executors giving byte-identical results, and remote checkpoints read by range requests."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from poslens.errors import UnknownModelError
from poslens.sweep import Revision, choose, jumps, revisions, spikes, sweep
from poslens.sweep.store import code_version
from poslens.testing import random_state_dict, small_config, write_checkpoint

STEPS = [0, 10, 20, 40, 80, 160, 320, 640, 1280, 2560]
JUMP_AT = 320  # W_pos snaps to a helix between steps 160 and 320


def _wpos(cfg, step: int, seed: int = 0) -> torch.Tensor:
    """Random rows blended with an exact helix: a slow drift towards it, then a jump at JUMP_AT."""
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(cfg.n_ctx, cfg.d_model, generator=g) * 0.02
    p = torch.arange(cfg.n_ctx, dtype=torch.float32)
    H = torch.zeros(cfg.n_ctx, cfg.d_model)
    H[:, 0], H[:, 1], H[:, 2] = torch.cos(2 * math.pi * p / 64), torch.sin(2 * math.pi * p / 64), p / cfg.n_ctx
    i = STEPS.index(step)
    a = 0.004 * i + (0.8 if step >= JUMP_AT else 0.0)
    return (1 - a) * R + a * 0.02 * H


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run in the hub's .bin layout: checkpoint-STEP folders; checkpoint-2561 is a byte copy of 2560."""
    cfg = small_config()
    root = tmp_path_factory.mktemp("run") / "run"
    for s in STEPS:
        sd = random_state_dict(cfg, seed=s)
        sd["wpe.weight"] = _wpos(cfg, s)
        write_checkpoint(root / f"checkpoint-{s}", cfg, sd, fmt="bin", prefix=True)
    shutil.copytree(root / "checkpoint-2560", root / "checkpoint-2561")
    return root


# ----------------------------------------------------------------------------- change points


@pytest.mark.parametrize("seed", range(8))
def test_planted_jump_is_found_at_its_step(seed):
    rng = np.random.default_rng(seed)
    n = 30
    k = int(rng.integers(5, 25))
    t = np.arange(n)
    x = 0.2 * np.log1p(t) + 0.5 * (t >= k) + rng.normal(0, 0.02, n)
    found = jumps(x)["jumps"]
    assert len(found) == 1 and abs(found[0]["index"] - k) <= 1, (k, found)
    assert found[0]["size"] > 0.3


@pytest.mark.parametrize("curve", ["log", "saturating", "linear", "slow-sigmoid"])
def test_no_jump_in_a_smooth_series(curve):
    rng = np.random.default_rng(1)
    t = np.arange(30.0)
    x = {"log": np.log1p(t), "saturating": 1 - np.exp(-t / 6), "linear": 0.1 * t,
         "slow-sigmoid": 1 / (1 + np.exp(-(t - 15) / 5))}[curve]
    x = x + rng.normal(0, 0.005 * np.ptp(x), len(t))
    assert jumps(x)["jumps"] == [] and spikes(x) == []


def test_a_single_odd_checkpoint_is_a_spike_not_a_smooth_series():
    x = list(np.linspace(0, 1, 20))
    x[9] += 0.6
    assert [s["index"] for s in spikes(x)] == [9]


def test_a_share_of_attention_must_move_by_an_absolute_amount_to_jump():
    """A head score that never leaves ~0.01 has a range-relative "jump" of a thousandth; the share floor drops it."""
    x = np.r_[np.full(8, 0.0100), np.full(8, 0.0106)] + np.random.default_rng(0).normal(0, 1e-6, 16)
    x[12] += 0.0008  # and an odd checkpoint of the same size
    assert jumps(x)["jumps"] and spikes(x)
    assert jumps(x, {"min_abs": 0.05})["jumps"] == [] and spikes(x, {"min_abs": 0.05}) == []
    y = np.r_[np.full(8, 0.01), np.full(8, 0.6)]
    assert [j["index"] for j in jumps(y, {"min_abs": 0.05})["jumps"]] == [8]


@pytest.mark.parametrize("seed", range(6))
def test_a_change_in_the_last_two_checkpoints_is_an_open_jump(seed):
    """Too late for a segment of its own (PELT needs min_size checkpoints after a break): a head
    forming as the history ends is still reported, marked open, at its largest step."""
    rng = np.random.default_rng(seed)
    x = np.r_[0.01 + rng.normal(0, 0.001, 19), 0.38, 0.99]
    (j,) = jumps(x)["jumps"]
    assert j["open"] and j["index"] == 20 and j["size"] > 0.9
    y = x.copy()
    y[19] = 0.01  # only the last checkpoint departs: a bad save cannot be told from a change
    assert jumps(y)["jumps"] == []


@pytest.mark.parametrize("curve", ["exp", "quadratic", "logistic-end"])
def test_a_curve_accelerating_into_the_end_is_no_open_jump(curve):
    t = np.arange(24.0)
    x = {"exp": np.exp(t / 3), "quadratic": (t / 23) ** 2, "logistic-end": 1 / (1 + np.exp(-(t - 26) / 2))}[curve]
    x = x + np.random.default_rng(2).normal(0, 0.002 * np.ptp(x), len(t))
    assert not [j for j in jumps(x)["jumps"] if j.get("open")], jumps(x)["jumps"]


# ----------------------------------------------------------------------------- revisions


def test_revision_choice_explicit_every_log():
    rs = [Revision("m", f"step-{s}", f"d/step-{s}", s) for s in (0, 1, 2, 4, 8, 16, 32, 64, 128)]
    assert [r.step for r in choose(rs, log=4)] == [0, 1, 8, 128]
    assert [r.step for r in choose(rs, every=4)] == [0, 8, 128]
    assert [r.step for r in choose(rs, steps=["4", "step-64"])] == [4, 64]
    with pytest.raises(UnknownModelError, match=r"no revision '5' \(nearest: step-4, step-8"):
        choose(rs, steps=["5"])
    with pytest.raises(Exception, match="one way"):
        choose(rs, every=2, log=3)


def test_unknown_published_step_names_the_nearest():
    with pytest.raises(UnknownModelError, match="nearest is 1000"):
        revisions("alias", steps=["1001"])
    assert [r.tokens for r in revisions("alias", steps=["0", "1000"])] == [0, 1000 * 512 * 1024]
    pythia = revisions("pythia-70m", steps=["1000"])  # the registry names the branch; 1,024 x 2,048 tokens a step
    assert [(r.revision, r.tokens) for r in pythia] == [("step1000", 1000 * 1024 * 2048)]


def test_local_run_revisions_in_step_order(run_dir, tmp_path):
    revs = revisions(str(run_dir))
    assert [r.step for r in revs] == STEPS + [2561]
    assert revs[0].revision == "checkpoint-0" and revs[0].spec.endswith("checkpoint-0")
    # a killed export's hidden half-swapped folder holds a config.json too; it is not a revision
    run = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoint-0", run / "checkpoint-0")
    shutil.copytree(run_dir / "checkpoint-0", run / ".model.new")
    assert [r.revision for r in revisions(str(run))] == ["checkpoint-0"]


# ----------------------------------------------------------------------------- the sweep


def test_sweep_flags_jump_and_identical_revision_and_resumes(run_dir, tmp_path):
    out = tmp_path / "sw"
    res = sweep([str(run_dir)], out=out, analyses=["helix"], executor="serial", progress=False)
    share = res["metrics"]["wpos_top_k_share"]
    values = [r["value"] for r in share["rows"]]
    assert all(v is not None for v in values)
    (j,) = share["jumps"][str(run_dir)]
    assert j["revision"] == f"checkpoint-{JUMP_AT}" and j["size"] > 0
    flags = res["flags"][str(run_dir)]
    assert flags["checkpoint-2561"] == ["tensors bit-identical to checkpoint-2560"]
    assert set(flags) == {"checkpoint-2561"}
    row = next(r for r in share["rows"] if r["revision"] == "checkpoint-2561")
    assert "tensors bit-identical to checkpoint-2560" in row["flags"]
    cells = res["cells"]
    assert all(c["status"] == "ok" for c in cells) and len(cells) == len(STEPS) + 1
    fp = res["fingerprints"][str(run_dir)]
    assert set(fp["checkpoint-0"]) == {"wpe.weight"}  # the helix cell reads W_pos only
    csv = (out / "tables" / "wpos_top_k_share.csv").read_text().splitlines()
    assert csv[0].startswith("model,revision,step,tokens,value") and len(csv) == len(STEPS) + 2
    assert (out / "sweep.html").read_text().count("Plotly.newPlot") == 1
    first = {p.name: p.read_bytes() for p in (out / "tables").iterdir()}
    # resume: nothing recomputed, the same bytes
    again = sweep([str(run_dir)], out=out, analyses=["helix"], executor="serial", progress=False, page=False)
    assert again["run"]["computed"] == 0 and again["run"]["cached"] == len(STEPS) + 1
    assert {p.name: p.read_bytes() for p in (out / "tables").iterdir()} == first
    # a damaged entry and an entry written from other material are recomputed, never trusted
    entries = sorted((out / "store").rglob("*.json"))
    entries[0].write_text(entries[0].read_text()[:-40])
    doc = json.loads(entries[1].read_text())
    doc["material"]["code"]["package"] = "0.0.1"
    entries[1].write_text(json.dumps(doc))
    third = sweep([str(run_dir)], out=out, analyses=["helix"], executor="serial", progress=False, page=False)
    assert third["run"]["computed"] == 2
    assert {p.name: p.read_bytes() for p in (out / "tables").iterdir()} == first


def test_code_version_covers_the_analysis_imports():
    from poslens.analyses.helix import fit_helix

    v = code_version(("poslens.sweep.cells", "poslens.analyses.helix"))
    fits = fit_helix.__module__.replace(".", "/") + ".py"  # wherever the helix fit lives, it is covered
    assert {"poslens/sweep/cells.py", "poslens/results.py", fits} <= set(v["files"])
    assert len(v["source_sha256"]) == 64


def test_checkpoint_without_wte_is_not_applicable(tmp_path):
    cfg = small_config()
    d = write_checkpoint(tmp_path / "partial", cfg, random_state_dict(cfg), drop=("wte.weight",))
    res = sweep([str(d)], out=tmp_path / "o", analyses=["heads", "helix"], executor="serial", progress=False,
                page=False)
    by = {c["analysis"]: c for c in res["cells"]}
    assert by["helix"]["status"] == "ok"
    assert by["heads"]["status"] == "not_applicable" and "wte.weight" in by["heads"]["reason"]
    assert res["metrics"]["best_induction_score"]["rows"][0]["value"] is None


def test_local_pool_is_byte_identical_to_serial(run_dir, tmp_path):
    kw = dict(steps=["0", "2560"], analyses=["helix", "icl"], progress=False, page=False)
    sweep([str(run_dir)], out=tmp_path / "serial", executor="serial", **kw)
    sweep([str(run_dir)], out=tmp_path / "pool", executor="local", jobs=2, **kw)
    for name in ["sweep.json"] + [f"tables/{m}.{e}" for m in ("icl_gain", "wpos_top_k_share") for e in ("csv", "json")]:
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes(), name
    s = sorted(p.relative_to(tmp_path / "serial").as_posix() for p in (tmp_path / "serial" / "store").rglob("*.json"))
    p = sorted(p.relative_to(tmp_path / "pool").as_posix() for p in (tmp_path / "pool" / "store").rglob("*.json"))
    assert s == p and all((tmp_path / "serial" / f).read_bytes() == (tmp_path / "pool" / f).read_bytes() for f in s)


def test_sweep_of_a_hub_run_reads_only_w_pos(tmp_path, monkeypatch):
    """A .bin-only hub run over loopback: each helix cell fetches W_pos, not the checkpoint."""
    from huggingface_hub import constants

    from poslens.models import registry
    from poslens.testing.hub import FakeHub

    cfg = small_config()
    for s in (0, 100, 200):
        write_checkpoint(tmp_path / "hub" / "o" / "run" / f"checkpoint-{s}", cfg, random_state_dict(cfg, seed=s),
                         fmt="bin", prefix=True)
    whole = sum(f.stat().st_size for f in (tmp_path / "hub").rglob("pytorch_model.bin"))
    with FakeHub(tmp_path / "hub") as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(registry, "_REACHABLE", {})
        monkeypatch.setenv("POSLENS_CACHE", str(tmp_path / "pc"))
        assert [r.revision for r in revisions("o/run", log=2)] == ["checkpoint-0", "checkpoint-200"]  # its branches
        with pytest.raises(UnknownModelError, match=r"nearest: checkpoint-100, checkpoint-200"):
            revisions("o/run", steps=["150"])
        hub.reset_counts()
        res = sweep(["o/run"], steps=["checkpoint-0", "checkpoint-100", "checkpoint-200"], out=tmp_path / "o",
                    analyses=["helix"], executor="serial", progress=False, page=False)
        bin_bytes = hub.bytes_sent
    assert [c["status"] for c in res["cells"]] == ["ok"] * 3
    assert [r["step"] for r in res["revisions"]["o/run"]] == [0, 100, 200]
    w_pos = 3 * cfg.n_ctx * cfg.d_model * 4
    assert w_pos < bin_bytes < w_pos + 3 * 16_000 and bin_bytes < 0.3 * whole


# ----------------------------------------------------------------------------- the command


def _cli(*args):
    from click.testing import CliRunner

    from poslens.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_bad_revision_and_unreachable_ray_are_one_line(run_dir, tmp_path):
    r = _cli("sweep", "-m", str(run_dir), "--revisions", "300", "-o", str(tmp_path / "o"))
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nearest: checkpoint-160, checkpoint-320" in lines[0]
    t = time.perf_counter()
    r = _cli("sweep", "-m", str(run_dir), "--executor", "ray", "--address", "127.0.0.1:9", "-o", str(tmp_path / "o"))
    assert time.perf_counter() - t < 10 and r.exit_code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Ray cluster answers at 127.0.0.1:9" in lines[0], r.stderr
    assert not (tmp_path / "o" / "sweep.json").exists()


def test_cli_a_sweep_whose_every_cell_failed_on_a_mistake_is_one_line_and_writes_nothing(run_dir, tmp_path):
    # the same mistake in every cell (here an option; offline, a hub model not in the cache) is a user's mistake
    out = tmp_path / "o"
    r = _cli("sweep", "-m", str(run_dir), "-a", "helix", "--set", "helix.k=1000", "--executor", "serial",
             "--no-page", "-o", str(out))
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("sweep cells")]
    assert len(lines) == 1 and "every cell failed (11 of 11); the first:" in lines[0] and "1000 components" in lines[0]
    assert not out.exists()


def test_cli_a_sweep_whose_every_cell_crashed_exits_1_and_keeps_the_reasons(run_dir, tmp_path, monkeypatch):
    import dataclasses

    from poslens.sweep import cells

    def crash(w, opts):
        raise RuntimeError("boom")

    monkeypatch.setitem(cells.ANALYSES, "helix", dataclasses.replace(cells.ANALYSES["helix"], fn=crash))
    r = _cli("sweep", "-m", str(run_dir), "-a", "helix", "--executor", "serial", "--no-page", "-o",
             str(tmp_path / "o"))
    assert r.exit_code == 1, r.output
    assert "every cell failed (the first: unexpected RuntimeError: boom)" in r.stderr
    assert (tmp_path / "o" / "sweep.json").is_file()


def test_an_infinite_metric_stays_infinite_through_the_store(run_dir, tmp_path, monkeypatch):
    import dataclasses

    from poslens.sweep import cells

    helix = cells.ANALYSES["helix"]
    monkeypatch.setitem(cells.ANALYSES, "helix", dataclasses.replace(
        helix, fn=lambda w, opts: {**helix.fn(w, opts), "helix_period": math.inf}))
    res = sweep([str(run_dir)], out=tmp_path / "o", steps=["0", "10"], analyses=["helix"], executor="serial",
                progress=False, page=False)
    assert [r["value"] for r in res["metrics"]["helix_period"]["rows"]] == [math.inf, math.inf]
    json.loads((tmp_path / "o" / "tables" / "helix_period.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_cli_json_of_an_infinite_metric_is_strict_json(run_dir, tmp_path, monkeypatch):
    # sweep --json printed json.dumps of the raw result: an infinite metric came out as a bare Infinity,
    # which no strict JSON reader takes, where sweep.json and the tables hold the string "Infinity"
    import dataclasses

    from poslens.sweep import cells

    helix = cells.ANALYSES["helix"]
    monkeypatch.setitem(cells.ANALYSES, "helix", dataclasses.replace(
        helix, fn=lambda w, opts: {**helix.fn(w, opts), "helix_period": math.inf}))
    r = _cli("sweep", "-m", str(run_dir), "--revisions", "0,10", "-a", "helix", "--executor", "serial",
             "--no-page", "--json", "-o", str(tmp_path / "o"))
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert [row["value"] for row in d["metrics"]["helix_period"]["rows"]] == ["Infinity", "Infinity"]


def test_cli_a_sweep_with_some_failed_cells_exits_1_and_keeps_the_others(run_dir, tmp_path):
    # helix.k=1000 fails every helix cell; the heads cells finish. It exited 0, as if the sweep were whole
    out = tmp_path / "o"
    args = ["sweep", "-m", str(run_dir), "--revisions", "0,2560", "-a", "helix,heads", "--set", "helix.k=1000",
            "--executor", "serial", "--no-page", "-o", str(out)]
    r = _cli(*args)
    assert r.exit_code == 1, r.output
    assert f"failed: {run_dir} checkpoint-0 helix: InvalidInputError:" in r.stdout
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("poslens:")]
    assert "2 of 4 cells failed (the first: InvalidInputError:" in line
    rows = json.loads((out / "tables" / "best_induction_score.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    r = _cli(*args, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["run"]["cached"] == 2


def test_cli_a_rerun_into_the_same_out_removes_the_tables_it_no_longer_writes(run_dir, tmp_path):
    # the heads tables of the first run stayed beside the second's, passing for its results
    out = tmp_path / "o"
    base = ["sweep", "-m", str(run_dir), "--revisions", "0,2560", "--executor", "serial", "-o", str(out)]
    assert _cli(*base, "-a", "helix,heads").exit_code == 0
    (out / "tables" / "mine.csv").write_text("kept\n")
    assert (out / "tables" / "best_induction_score.csv").is_file() and (out / "figures" / "helix_r2.png").is_file()
    assert _cli(*base, "-a", "helix", "--no-page").exit_code == 0
    assert sorted(p.name for p in (out / "tables").iterdir() if not p.name.startswith("helix")) == [
        "mine.csv", "short_period_share.csv", "short_period_share.json", "wpos_top_k_share.csv",
        "wpos_top_k_share.json"]
    assert not (out / "sweep.html").exists() and not list((out / "figures").iterdir())


def test_cli_list_with_json_prints_json(run_dir):
    r = _cli("sweep", "-m", str(run_dir), "--revisions", "0,2560", "--list", "--json")  # printed the TSV lines
    assert r.exit_code == 0 and [(x["revision"], x["step"]) for x in json.loads(r.stdout)] == [
        ("checkpoint-0", 0), ("checkpoint-2560", 2560)]


def test_real_gpt2_small_partial_checkpoint(partial_ckpt, tmp_path):
    """Real GPT-2 small weights (no wte): the helix cell reproduces the top-3 share, the head
    cells are not applicable, and the W_pos fingerprint matches the published one."""
    res = sweep([str(partial_ckpt)], out=tmp_path, analyses=["helix", "heads"], executor="serial", progress=False,
                page=False)
    by = {c["analysis"]: c for c in res["cells"]}
    assert by["helix"]["status"] == "ok" and abs(by["helix"]["metrics"]["wpos_top_k_share"] - 0.9106) < 0.002
    assert by["heads"]["status"] == "not_applicable" and "token embedding W_E (wte.weight)" in by["heads"]["reason"]
    published = dict(line.split("\t")[::2] for line in
                     (partial_ckpt / "gpt2-small-sha256.tsv").read_text().splitlines()[1:] if line.strip())
    (fp,) = res["fingerprints"].values()
    assert fp[partial_ckpt.name]["wpe.weight"] == published["transformer.wpe.weight"]


def test_rotary_model_has_no_helix_cell(tmp_path):
    """A GPT-NeoX (rotary) checkpoint: helix is not applicable, with the reason; its head cells run."""
    from poslens.testing.families import family_checkpoint

    d = family_checkpoint(tmp_path / "neox", "gpt_neox")
    res = sweep([str(d)], out=tmp_path / "o", analyses=["helix", "icl"], executor="serial", progress=False, page=False)
    by = {c["analysis"]: c for c in res["cells"]}
    assert by["helix"]["status"] == "not_applicable" and "learned positional embedding" in by["helix"]["reason"]
    assert "wpe" not in by["helix"]["reason"]  # GPT-2's name for a table this family does not have
    assert by["icl"]["status"] == "ok" and by["icl"]["metrics"]["icl_gain"] is not None


def test_an_unguarded_script_is_told_why_its_pool_broke(tmp_path):
    # every worker imports the calling script; unguarded, each one fails starting a pool of its own, and the
    # message said only "out of memory? try --jobs 1"
    import os
    import subprocess
    import sys

    import poslens

    script = tmp_path / "mine.py"
    script.write_text('from poslens.sweep.executors import run_local\nrun_local([{"key": "k"}], print, jobs=1, max_restarts=0)\n')
    env = {**os.environ, "PYTHONPATH": str(Path(poslens.__file__).parents[1])}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert 'outside `if __name__ == "__main__":`' in r.stderr.splitlines()[-1]


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(),
                    reason="finds the pool's processes through Linux's /proc, which macOS and Windows lack")
def test_a_killed_driver_leaves_no_pool_workers_behind(tmp_path):
    # the workers' parent is the fork server: a driver killed (SIGTERM, the OOM killer) left them, and the fork
    # server, waiting for cells for ever
    import os
    import signal
    import subprocess
    import sys
    import uuid

    import poslens

    token = uuid.uuid4().hex
    mark = f"POSLENS_TEST_POOL={token}"
    script = tmp_path / "driver.py"
    script.write_text(
        "from poslens.sweep.executors import run_local\n"
        "if __name__ == '__main__':\n"
        "    tasks = [{'key': str(i), 'spec': 'tiny', 'analysis': 'helix', 'options': {'k': 3}} for i in range(5000)]\n"
        "    run_local(tasks, lambda *a: None, jobs=2)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(poslens.__file__).parents[1]), "POSLENS_TEST_POOL": token}

    def marked() -> set[int]:
        pids = set()
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and mark.encode() in (d / "environ").read_bytes().split(b"\0"):
                    pids.add(int(d.name))
            except OSError:
                pass
        return pids

    driver = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while len(marked() - {driver.pid}) < 2 and time.time() < deadline:  # the fork server and a worker
            time.sleep(0.2)
        assert len(marked() - {driver.pid}) >= 2 and driver.poll() is None
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.time() + 20
        while marked() and time.time() < deadline:
            time.sleep(0.2)
        left = marked()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for pid in marked():
            os.kill(pid, signal.SIGKILL)
    assert not left


def test_one_model_or_analysis_given_as_a_string_is_one_name():
    from poslens.errors import InvalidInputError
    from poslens.sweep.run import plan

    tasks = plan("tiny", every=6, analyses="helix")  # read as the models t, i, n, y and the analyses h, e, l, ...
    assert {(t["material"]["model"], t["analysis"]) for t in tasks} == {("tiny", "helix")} and len(tasks) == 3
    with pytest.raises(InvalidInputError, match="unknown analysis 'hlix' \\(did you mean 'helix'\\?\\)"):
        plan(["tiny"], every=6, analyses=["hlix"])  # a KeyError
