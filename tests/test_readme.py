"""The README is the front door: its Python example runs, and every command it names exists."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from poslens.cli import COMMAND_MODULES, cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape[-1] == scope["w"].cfg.d_vocab


def test_causal_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sec = README.split("### `poslens ablate`, `poslens patch`", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert set(scope["r"].effects) == {"loss"}
    assert scope["p"].sweep == "heads" and len(scope["p"].normalized) == 3  # tiny: 3 layers x 4 heads


def test_every_command_in_the_readme_exists():
    named = set(re.findall(r"`poslens ([a-z][a-z-]*)", README))
    known = {c for cmds in COMMAND_MODULES.values() for c in cmds}
    assert named <= known, named - known
    assert known <= named, f"commands the README does not mention: {known - named}"
    for name in sorted(named):
        assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0, name


def test_help_calls_the_studies_what_the_readme_calls_them():
    # "the seeds" is the code's shorthand; a user reading --help knows them as the source studies
    import click

    def helps(cmd, path):
        yield path, CliRunner().invoke(cli, [*path, "--help"]).output
        if isinstance(cmd, click.Group):
            for n, sub in cmd.commands.items():
                yield from helps(sub, [*path, n])

    for name in sorted({c for cmds in COMMAND_MODULES.values() for c in cmds}):
        cmd = cli.get_command(click.Context(cli), name)
        for path, text in helps(cmd, [name]):
            assert "seeds'" not in text and "the seeds" not in text, path


def test_quickstart_is_two_commands_and_ci_runs_them():
    quick = README.split("## Quickstart", 1)[1].split("## Commands", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert [b.strip() for b in blocks] == [
        'pip install torch==2.13.0 && pip install -c requirements.lock -e ".[test]" && poslens report',
        "python -m pytest",
    ]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0" in ci and 'pip install -c requirements.lock -e ".[test]"' in ci
    assert "python -m pytest" in ci


def test_the_lock_pins_every_dependency_and_leaves_torch_to_the_cpu_install():
    root = Path(__file__).resolve().parents[1]
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (root / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
    assert names - {"torch"} <= pins, f"not in requirements.lock (run scripts/relock): {names - {'torch'} - pins}"
    assert "torch" not in pins and not any(p.startswith("nvidia-") for p in pins)


def test_dup_heads_section_names_every_verdict_and_kind():
    import inspect

    from poslens.analyses.heads import measure

    sec = README.split("### `poslens dup-heads`", 1)[1].split("\n### ", 1)[0]
    verdicts = re.findall(r'return "(\w+)"', inspect.getsource(measure._decay_verdict))
    assert set(verdicts) == {"unknown", "decaying", "growing", "uniform"}
    verdict_text = sec.split("`verdict`", 1)[1].split("`token_classes`", 1)[0]
    assert all(v in verdict_text for v in verdicts), verdict_text
    kinds = re.findall(r'"(local|uniform|mixed)"', inspect.getsource(measure.pattern_spread))
    assert set(kinds) == {"local", "uniform", "mixed"}
    assert all(k in sec.split("`kind`", 1)[1][:40] for k in kinds)


def test_the_shared_options_and_their_exceptions_are_as_the_readme_says():
    import click

    shared = ("--model", "--out", "--device", "--dtype", "--json")
    lacking: dict[str, list[str]] = {}

    def walk(cmd, name, ctx):
        if isinstance(cmd, click.Group):
            for n in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, n), f"{name} {n}".strip(), ctx)
            return
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if missing := [o for o in shared if o not in opts]:
            lacking[name] = missing

    walk(cli, "", click.Context(cli))
    train = cli.get_command(click.Context(cli), "train")
    assert next(p.default for p in train.params if p.name == "out") == "runs/tiny"
    assert lacking == {
        "helix": ["--device", "--dtype"], "sweep": ["--device", "--dtype"], "report": ["--json"],
        "train": ["--model", "--json"], "inspect": ["--model", "--out", "--device", "--dtype"],
        "models": ["--model", "--out", "--device", "--dtype"],
    }
    text = " ".join(README.split("## Commands", 1)[1].split("| command |", 1)[0].split())
    assert "`helix` and `sweep` read weights only (no `--device`/`--dtype`)" in text
    assert "`report` writes a page (no `--json`)" in text and "`train` makes a model (no `--model` or `--json`; `--out` defaults to `runs/tiny`)" in text
    assert "`inspect MODEL` and `models` take none of them" in text


def test_the_readme_says_scaled_rotary_models_are_refused():
    # the families refuse them (tests/test_families.py); a user reading the supported list must learn it too
    text = " ".join(README.split("Any hub\nid or directory", 1)[1].split("### Which analyses", 1)[0].split())
    assert "Scaled rotary embeddings are not supported: a config whose `rope_scaling`" in text
