"""The CLI core: help everywhere, `models`, `inspect`, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from poslens.cli import COMMAND_MODULES, cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_everywhere():
    r = run("--help")
    assert r.exit_code == 0
    names = sorted(c for cmds in COMMAND_MODULES.values() for c in cmds)
    for name in names:
        assert name in r.output
        sub = run(name, "--help")
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage:" in sub.output


def test_models_lists_every_registered_name():
    r = run("models")
    assert r.exit_code == 0
    for name in ("tiny", "tiny-attn", "gpt2", "gpt2-xl", "distilgpt2", "battlestar", "eowyn"):
        assert name in r.output
    data = json.loads(run("models", "--json").output)
    assert len(data["models"]) == 44 and "gpt2" in data["families"] and "pythia" in data["families"]
    assert set(data["architectures"]) == {"gpt2", "gpt_neo", "opt", "gpt_neox", "llama"}
    only = run("models", "--family", "pythia-deduped").output
    rows = [line.split()[0] for line in only.splitlines() if line and not line.startswith(("Families", "Architectures", "Also"))]
    assert rows == [f"pythia-{s}-deduped" for s in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")]
    assert "154 training checkpoints" in only
    bad = run("models", "--family", "bert")
    assert bad.exit_code == 2 and "unknown family 'bert'" in bad.output


def test_inspect_partial_checkpoint(partial_ckpt):
    r = run("inspect", str(partial_ckpt), "--json")
    assert r.exit_code == 0
    info = json.loads(r.output)
    assert info["complete"] is False and "wte.weight" in info["tensors_missing"]
    assert info["config"]["n_layers"] == 12 and info["n_params"] == 124439808
    text = run("inspect", str(partial_ckpt)).output
    assert "missing: wte.weight" in text and "12 layers" in text


def test_inspect_tiny_offline():
    r = run("inspect", "tiny")
    assert r.exit_code == 0 and "tokenizer.json" in r.output
    assert "training history: 13 snapshots, steps 0, 1," in r.output and "tiny@STEP" in r.output
    assert json.loads(run("inspect", "tiny-attn", "--json").output)["history_steps"][-1] == 22000
    assert json.loads(run("inspect", "tiny@700", "--json").output)["history_steps"] == []  # a snapshot has none


@pytest.mark.parametrize(
    "args, words",
    [
        (("inspect", "gpt2-smal"), "did you mean 'gpt2-small'"),
        (("inspect", "./does/not/exist"), "does not exist"),
        (("inspect", "battlestar@7"), "no checkpoint at step 7"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, words):
    r = run(*args)
    assert r.exit_code == 2
    err = r.output.strip()
    assert err.startswith("poslens: error:") and words in err
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["lens", "--prompt", "And God said, Let there be"],   # opens the model for a forward pass
    ["helix", "-m", "tiny"],                               # two models: a helix sweep over both
])
def test_a_null_model_runs_wherever_a_model_does(args, tmp_path):
    r = run(*args, "-m", "random=5:tiny", "-o", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    assert "tiny (random weights, seed 5)" in r.output


def test_help_loads_no_torch():
    # `poslens --help` and every command's --help answer without loading torch (seconds on a cold start)
    import subprocess
    import sys

    code = ("import sys\nfrom poslens.cli import cli, COMMAND_MODULES\n"
            "for cmds in COMMAND_MODULES.values():\n"
            "    for c in cmds:\n"
            "        try:\n"
            "            cli.main([c, '--help'], prog_name='poslens')\n"
            "        except SystemExit:\n"
            "            pass\n"
            "print('torch' in sys.modules, 'scipy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_a_warning_is_one_line_naming_the_fix(monkeypatch, tmp_path):
    import poslens.models.runner as runner_mod

    monkeypatch.setattr(runner_mod, "_cpu_flags", lambda: {"avx2"})  # a CPU without bfloat16 instructions
    monkeypatch.setattr(runner_mod, "_WARNED", set())
    r = run("dup-heads", "-m", "tiny-attn", "--dtype", "bfloat16", "--n-seq", "2", "--seq-len", "8",
            "--n-text-seq", "1", "--no-positional", "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stderr.splitlines() if "bfloat16" in x]
    assert lines == ["poslens: warning: this CPU has no bfloat16 matmul instructions (amx_bf16 or avx512_bf16), so "
                     "bfloat16 runs emulated, tens of times slower than float32; use float32 here (--dtype float32)"]


def test_python_dash_m_runs_the_same_cli():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "poslens", "models", "--family", "bert"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("poslens: error: unknown family 'bert'"), r.stderr


def test_a_rerun_into_the_same_out_removes_only_what_the_earlier_run_wrote(tmp_path):
    """--out holds one run: figures an earlier command wrote there and this one did not would
    pass for this run's. Files poslens did not write stay."""
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(cli, ["helix", "-m", "tiny", "-o", str(out)]).exit_code == 0
    assert (out / "helix_3d.png").is_file()
    (out / "notes.txt").write_text("mine")
    (out / ".poslens-written").write_text((out / ".poslens-written").read_text() + "../outside.txt\n")
    (tmp_path / "outside.txt").write_text("not in --out")
    r = runner.invoke(cli, ["helix", "-m", "tiny", "-o", str(out), "--no-figures"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".html", ".json", ".txt")) == [
        "notes.txt", "result.json"]
    assert (tmp_path / "outside.txt").is_file()
    assert (out / ".poslens-written").read_text() == "result.json\n"


def test_the_written_list_has_every_file_a_run_wrote(tmp_path):
    """plotly.min.js, which every HTML figure loads from beside it, is the run's too: unlisted, a
    rerun with --no-figures kept it as if the figures were still there."""
    out = tmp_path / "out"
    assert run("helix", "-m", "tiny", "-o", str(out)).exit_code == 0
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {".poslens-written"}
    assert "plotly.min.js" in files and set((out / ".poslens-written").read_text().splitlines()) == files
    assert run("helix", "-m", "tiny", "-o", str(out), "--no-figures").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [".poslens-written", "result.json"]


def test_stale_removal_follows_no_link_and_no_hand_written_path(tmp_path, monkeypatch):
    """Only plain files named as poslens names them (relative, inside --out) are removed: not the
    file a link put in place of a figure points to, not an absolute path into --out, not one a
    parent link leads to; a file that cannot be removed stays listed, with no traceback."""
    from poslens.cli.common import forget_stale

    out, other = tmp_path / "out", tmp_path / "other"
    (out / "sub").mkdir(parents=True)
    other.mkdir()
    for f in ("notes.txt", "mine.txt", "sub/kept.png", "locked.png"):
        (out / f).write_text("x")
    (other / "x.png").write_text("x")
    (out / "fig.png").symlink_to(out / "notes.txt")  # a user's link where a figure was
    (out / "away").symlink_to(other, target_is_directory=True)
    (out / ".poslens-written").write_text("\n".join(["fig.png", str(out / "mine.txt"), "sub/../sub/kept.png", "away/x.png",
                                                     "sub", ".", "locked.png"]) + "\n")
    unlink = type(out).unlink

    def refuse(p, *a, **k):
        if p.name == "locked.png":
            raise PermissionError(13, "Permission denied")
        return unlink(p, *a, **k)

    monkeypatch.setattr(type(out), "unlink", refuse)
    (out / "result.json").write_text("{}")
    forget_stale(out, [out / "result.json"])
    assert all((out / f).exists() for f in ("notes.txt", "mine.txt", "sub/kept.png", "fig.png", "locked.png"))
    assert (other / "x.png").is_file()
    assert (out / ".poslens-written").read_text().splitlines() == ["locked.png", "result.json"]
