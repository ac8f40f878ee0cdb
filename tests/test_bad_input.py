"""Every mistake a user can make: exit 2, one line on stderr, no traceback, nothing written.

The table covers every registered command; a command that is not in it fails
``test_every_command_is_in_the_table`` until rows for it are added. Each row runs the real
entry point (``poslens.cli.main`` with ``standalone_mode``) in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from poslens.cli import COMMAND_MODULES, cli
from poslens.testing import random_checkpoint, small_config

# Placeholders filled by the `paths` fixture: {out} is the --out directory (must stay absent),
# {ckpt} a good small checkpoint, {partial} the real partial GPT-2 small, {wpe} / {qkv} a
# checkpoint whose wpe.weight / c_attn.weight disagrees with config.json, {bert} a config of
# another architecture, {corrupt} a truncated safetensors file, {empty} an empty text file,
# {binary} a file of bytes that are not UTF-8 text, {file} an existing file (not a directory), {missing} a path that does not exist.
CASES: list[tuple[str, list[str], str]] = [
    # --- unknown or damaged models, for several commands
    ("inspect", ["inspect", "gpt2-smal"], "did you mean"),
    ("inspect", ["inspect", "{missing}"], "does not exist"),
    ("inspect", ["inspect", "{file}"], "is a file"),
    ("report", ["report", "-m", "{file}", "-o", "{out}"], "is a file"),
    ("inspect", ["inspect", "tiny@v1"], "revision"),
    ("inspect", ["inspect", "battlestar@7"], "no checkpoint at step 7"),
    ("inspect", ["inspect", "{bert}"], "bert"),
    ("inspect", ["inspect", "{corrupt}"], "safetensors"),
    ("models", ["models", "extra-argument"], "unexpected extra argument"),
    ("report", ["report", "tiny", "-o", "{out}"], "give a model with --model"),
    ("helix", ["helix", "tiny", "tiny-attn", "-o", "{out}"], "helix --model tiny --model tiny-attn)"),
    ("helix", ["helix", "-m", "nosuchmodel", "-o", "{out}"], "unknown model"),
    ("helix", ["helix", "-m", "{wpe}", "-o", "{out}"], "wpe.weight"),
    ("helix", ["helix", "-m", "{file}", "-o", "{out}"], "is a file"),
    ("spectra", ["spectra", "-m", "{qkv}", "-o", "{out}"], "c_attn"),
    ("helix", ["helix", "--n-components", "0", "-o", "{out}"], "n-components"),
    ("helix", ["helix", "--positions", "10:5", "-o", "{out}"], "position range"),
    ("helix", ["helix", "--positions", "abc", "-o", "{out}"], "positions"),
    ("helix", ["helix", "--family", "nope", "-o", "{out}"], "family"),
    ("helix", ["helix", "-m", "battlestar", "--steps", "abc", "-o", "{out}"], "steps"),
    ("helix", ["helix", "--bogus-flag"], "no such option"),
    ("helix", ["helix", "-o", "{file}"], "file"),
    # --- geometry
    ("spectra", ["spectra", "--layers", "99", "-o", "{out}"], "layer"),
    ("spectra", ["spectra", "--layers", "x", "-o", "{out}"], "layer"),
    ("spectra", ["spectra", "--device", "cuda", "-o", "{out}"], "cuda"),
    ("spectra", ["spectra", "--dtype", "float16", "-o", "{out}"], "float16"),
    ("subspaces", ["subspaces", "--lengths", "0", "-o", "{out}"], "length"),
    ("subspaces", ["subspaces", "--threshold", "1.5", "-o", "{out}"], "threshold"),
    ("subspaces", ["subspaces", "--text", "   ", "-o", "{out}"], "empty"),
    ("subspaces", ["subspaces", "--lengths", "a=5,a=9", "-o", "{out}"], "names 'a' twice"),
    ("lens", ["lens", "--device", "cuda", "-o", "{out}"], "cuda"),
    ("lens", ["lens", "--device", "tpu", "-o", "{out}"], "device"),
    ("lens", ["lens", "--top-k", "0", "-o", "{out}"], "top-k"),
    ("lens", ["lens", "--top-k", "5000", "-o", "{out}"], "vocabulary of 1024"),
    ("lens", ["lens", "-m", "{partial}", "-o", "{out}"], "wte"),
    # --- probes
    ("probe", ["probe", "--n-units", "1", "-o", "{out}"], "at least 2 units"),
    ("probe", ["probe", "--layers", "99", "-o", "{out}"], "layer"),
    ("probe", ["probe", "--words", "{missing}", "-o", "{out}"], "does not exist"),
    ("probe", ["probe", "--words", "{empty}", "-o", "{out}"], "word list"),
    ("probe", ["probe", "--train-fraction", "1.5", "-o", "{out}"], "train-fraction"),
    ("probe", ["probe", "--schemes", "nope", "-o", "{out}"], "scheme"),
    # --- heads and neurons
    ("dup-heads", ["dup-heads", "--seq-len", "0", "-o", "{out}"], "seq-len"),
    ("dup-heads", ["dup-heads", "--n-seq", "0", "-o", "{out}"], "n-seq"),
    ("dup-heads", ["dup-heads", "--n-text-seq", "0", "-o", "{out}"], "n-text-seq"),
    ("dup-heads", ["dup-heads", "--threshold", "0", "-o", "{out}"], "not in the range 0.0<x<=1.0"),
    ("dup-heads", ["dup-heads", "--threshold", "2", "-o", "{out}"], "threshold"),
    ("dup-heads", ["dup-heads", "--device", "cuda", "-o", "{out}"], "cuda"),
    ("dup-heads", ["dup-heads", "--profile-heads", "9.9", "-o", "{out}"], "9.9"),
    ("dup-heads", ["dup-heads", "--corpus", "{missing}", "-o", "{out}"], "does not exist"),
    ("dup-heads", ["dup-heads", "--corpus", "{empty}", "-o", "{out}"], "empty"),
    ("dup-heads", ["dup-heads", "--corpus", "{binary}", "-o", "{out}"], "is not UTF-8 text"),
    ("position-probe", ["position-probe", "--corpus", "{ckpt}", "-o", "{out}"], "is a directory"),
    ("dup-neurons", ["dup-neurons", "--head", "0.99", "-o", "{out}"], "head"),
    ("dup-neurons", ["dup-neurons", "--neuron", "999999", "-o", "{out}"], "neuron"),
    ("dup-neurons", ["dup-neurons", "--head", "zero", "-o", "{out}"], "LAYER.HEAD"),
    ("dup-neurons", ["dup-neurons", "-m", "{ckpt}", "--fit-from", "1000", "-o", "{out}"], "fit-from"),
    ("dup-neurons", ["dup-neurons", "-m", "{ckpt}", "--combined-from", "5000", "-o", "{out}"], "combined-from"),
    # --- twisted pair
    ("twisted-pair", ["twisted-pair", "--M", "0", "--no-model", "-o", "{out}"], "M"),
    ("twisted-pair", ["twisted-pair", "--curve", "nope", "--no-model", "-o", "{out}"], "curve"),
    ("twisted-pair", ["twisted-pair", "--n", "0", "--no-model", "-o", "{out}"], "n"),
    # --- causal
    ("ablate", ["ablate", "run", "--head", "-1.0", "-o", "{out}"], "counted from 0"),
    ("ablate", ["ablate", "run", "--head", "9.9", "-o", "{out}"], "out of range"),
    ("ablate", ["ablate", "run", "--kind", "nope", "-o", "{out}"], "kind"),
    ("ablate", ["ablate", "run", "--pos-pcs", "3", "--kind", "resample", "-o", "{out}"], "changes nothing"),
    ("ablate", ["ablate", "run", "--pos-pcs", "3", "--kind", "mean", "-o", "{out}"], "--mean-over all"),
    ("ablate", ["ablate", "nope"], "no such command"),
    ("ablate", ["ablate", "dup-neurons", "-m", "tiny-attn", "-o", "{out}"], "all zero"),
    ("patch", ["patch", "--clean", "And God said", "--corrupted", "And God said unto", "--metric",
               "logit-diff: God| Moses", "-o", "{out}"], "token"),
    ("patch", ["patch", "--clean", "And God said", "--corrupted", "And Moses said", "--metric", "garbage",
               "-o", "{out}"], "metric"),
    ("patch", ["patch", "-o", "{out}"], "--clean"),
    ("patch", ["patch", "--clean", "", "--corrupted", "And Moses said", "--metric", "logit-diff: God| Moses",
               "-o", "{out}"], "clean prompt is empty"),
    ("patch", ["patch", "--clean", "And God said", "--corrupted", "@{empty}", "--metric", "logit-diff: God| Moses",
               "-o", "{out}"], "is empty; give a file with text"),
    ("patch", ["patch", "--clean", "@{binary}", "--corrupted", "And God said", "--metric", "logit-diff: God| Moses",
               "-o", "{out}"], "--clean file"),
    ("patch", ["patch", "--clean", "And God said", "--corrupted", "And God said", "--metric", "logit-diff: God| Moses",
               "-o", "{out}"], "same text"),
    ("patch", ["patch", "--clean", "And God said", "--corrupted", "And Moses said", "--metric", "logit-diff: the| the",
               "-o", "{out}"], "both GOOD and BAD"),
    ("ablate", ["ablate", "run", "--head", "0.1", "--metric", "logit-diff:#5|#5", "-o", "{out}"], "two different"),
    ("inspect", ["inspect", "random:tiny"], "null model"),
    # --- the report
    ("report", ["report", "--only", "nope", "-o", "{out}"], "no report stage"),
    ("report", ["report", "--only", ",", "-o", "{out}"], "--only names no stage"),
    ("report", ["report", "--only", "helix", "--set", "word_index.schemes=bogus", "-o", "{out}"], "unknown scheme"),
    ("report", ["report", "--set", "sinks.inputs=bogus", "-o", "{out}"], "unknown input kind"),
    ("sweep", ["sweep", "-a", ",", "-o", "{out}"], "names no analysis"),
    ("sweep", ["sweep", "-a", "", "-o", "{out}"], "names no analysis"),  # an unset variable: -a "$ANALYSES"
    ("sweep", ["sweep", "--revisions", ",", "-o", "{out}"], "names no revision"),
    ("sweep", ["sweep", "-m", "{corrupt}", "-a", "helix", "-o", "{out}"], "safetensors"),
    ("report", ["report", "-m", "random=-1:tiny", "-o", "{out}"], "seed is a whole number"),
    ("report", ["report", "-m", "random:random:tiny", "-o", "{out}"], "one random: is enough"),
    ("sweep", ["sweep", "--set", "helix.k=abc", "-o", "{out}"], "is not a whole number"),
    ("sweep", ["sweep", "--every", "6", "--set", "heads.n_seq=0", "-o", "{out}"], "heads.n_seq must lie in [1, inf) (got 0)"),
    ("sweep", ["sweep", "--every", "6", "--set", "icl.batch_size=0", "-o", "{out}"], "icl.batch_size must lie in [1, inf) (got 0)"),
    ("sweep", ["sweep", "--every", "6", "--set", "heads.seed=-1", "-o", "{out}"], "heads.seed must lie in [0, inf) (got -1)"),
    ("sweep", ["sweep", "-a", "sinks", "--set", "sinks.epsilon=1", "-o", "{out}"], "sinks.epsilon must lie"),
    ("lens", ["lens", "--prompt", "@", "-o", "{out}"], "needs a file's path"),
    ("report", ["report", "--quick", "--full", "-o", "{out}"], "--quick"),
    ("report", ["report", "--set", "helix.n_components=abc", "-o", "{out}"], "n_components"),
    ("report", ["report", "--set", "helix.n_components=0", "-o", "{out}"], "n_components"),
    ("report", ["report", "--set", "helix.nope=1", "-o", "{out}"], "no option"),
    ("report", ["report", "--set", "nope", "-o", "{out}"], "STAGE.OPTION=VALUE"),
    ("report", ["report", "-m", "tiny", "--only", "verdicts", "--set", "verdicts.helix_r2=Infinity", "-o", "{out}"],
     "finite"),
    ("report", ["report", "-m", "tiny", "--only", "verdicts", "--set", "verdicts.helix_r2=1.5", "-o", "{out}"],
     "[0, 1]"),
    ("report", ["report", "-m", "tiny", "--only", "geometry_spectra", "--set", "geometry_spectra.layers=0,x",
                "-o", "{out}"], "expected an integer"),
    ("report", ["report", "-m", "nosuchmodel", "-o", "{out}"], "unknown model"),
    ("report", ["report", "--device", "cuda", "-o", "{out}"], "cuda"),
    # an empty --out (an unset shell variable) must not mean the current directory
    ("report", ["report", "-m", "tiny", "--only", "helix", "-o", ""], "--out"),
    ("helix", ["helix", "-o", " "], "--out"),
    # --- training
    ("train", ["train", "-c", "{missing}", "--out", "{out}"], "does not exist"),
    ("train", ["train", "-c", "{empty}", "--out", "{out}"], "empty"),
    ("train", ["train", "-c", "{ckpt}", "--out", "{out}"], "is a directory"),
    ("train", ["train", "-c", "{corpus}", "--out", "{file}"], "cannot write the run directory"),
    ("train", ["train", "-c", "{corpus}", "--max-steps", "2", "--n-ctx", "16", "--vocab-size", "300", "--out", ""],
     "an empty path"),  # trained into the current directory
    # a folder that exists but takes no files (read-only for every user, root too): it failed at its first file
    ("train", ["train", "-c", "{corpus}", "--out", "/proc/self"], "cannot write the run directory /proc/self"),
    ("train", ["train", "-c", "{corpus}", "--n-layers", "0", "--out", "{out}"], "n-layers"),
    ("train", ["train", "-c", "{binary}", "--out", "{out}"], "is not UTF-8 text"),
    ("train", ["train", "-c", "{corpus}", "--d-model", "30", "--n-heads", "4", "--out", "{out}"], "divisible"),
    ("train", ["train", "-c", "{corpus}", "--max-steps", "-5", "--out", "{out}"], "max-steps"),
    ("train", ["train", "-c", "{corpus}", "--device", "cuda", "--out", "{out}"], "cuda"),
    # --- positional analyses
    ("sinks", ["sinks", "-m", "{file}", "-o", "{out}"], "is a file, not a checkpoint directory"),
    ("sinks", ["sinks", "--epsilon", "1.5", "-o", "{out}"], "epsilon"),
    ("sinks", ["sinks", "--epsilon", "0", "-o", "{out}"], "not in the range 0.0<x<1.0"),
    ("sinks", ["sinks", "--inputs", "nope", "-o", "{out}"], "nope"),
    ("sinks", ["sinks", "--seq-len", "0", "-o", "{out}"], "seq-len"),
    ("position-probe", ["position-probe", "--test-frac", "2", "-o", "{out}"], "test-frac"),
    ("position-probe", ["position-probe", "--val-frac", "1", "-o", "{out}"], "not in the range 0.0<x<1.0"),
    ("position-probe", ["position-probe", "--n-seq", "0", "-o", "{out}"], "n-seq"),
    ("rotary", ["rotary", "-o", "{out}"], "rotary"),
    ("rotary", ["rotary", "--ablate-frac", "7", "-o", "{out}"], "ablate-frac"),
    # --- sweeps
    ("sweep", ["sweep", "-m", "tiny", "-a", "nope", "-o", "{out}"], "nope"),
    ("sweep", ["sweep", "-m", "tiny", "--penalty", "0", "-o", "{out}"], "not in the range x>0"),
    ("sweep", ["sweep", "-m", "battlestar", "--revisions", "7", "--list", "-o", "{out}"], "nearest"),
    ("sweep", ["sweep", "-m", "tiny", "--executor", "ray", "--address", "127.0.0.1:9", "-o", "{out}"], "ray"),
    ("sweep", ["sweep", "-m", "tiny", "--every", "0", "-o", "{out}"], "every"),
    # --- the group itself
    ("", ["nosuchcommand"], "no such command"),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, shared_dir):
    root = tmp_path_factory.mktemp("bad")
    cfg = small_config()
    good = random_checkpoint(root / "good", cfg, seed=0)

    def variant(name: str, tensor: str, shape: tuple[int, ...]) -> Path:
        from safetensors.torch import load_file, save_file

        d = root / name
        shutil.copytree(good, d)
        sd = load_file(d / "model.safetensors")
        import torch

        sd[tensor] = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.02
        save_file(sd, d / "model.safetensors", metadata={"format": "pt"})
        return d

    wpe = variant("wpe", "wpe.weight", (cfg.n_ctx, cfg.d_model + 3))
    qkv = variant("qkv", "h.0.attn.c_attn.weight", (cfg.d_model, 2 * cfg.d_model))
    bert = root / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    corrupt = root / "corrupt"
    shutil.copytree(good, corrupt)
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 3])
    empty = root / "empty.txt"
    empty.write_text("")
    corpus = root / "corpus.txt"
    corpus.write_text("In the beginning God created the heaven and the earth. " * 400)
    binary = root / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    a_file = root / "a_file"
    a_file.write_text("x")
    return {
        "ckpt": good, "wpe": wpe, "qkv": qkv, "bert": bert, "corrupt": corrupt, "empty": empty,
        "corpus": corpus, "binary": binary, "file": a_file, "missing": root / "does" / "not" / "exist",
        "partial": shared_dir / "data" / "gpt2-small-partial",
    }


def _fill(args: list[str], paths: dict, out: Path) -> list[str]:
    return [a.format(out=out, **paths) for a in args]


def test_every_command_is_in_the_table():
    known = {c for cmds in COMMAND_MODULES.values() for c in cmds}
    covered = {c for c, _, _ in CASES}
    assert known <= covered, f"commands with no bad-input row: {sorted(known - covered)}"


@pytest.mark.parametrize("command, args, words", CASES, ids=[" ".join(a)[:60] for _, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(command, args, words, paths, tmp_path, monkeypatch):
    if "{partial}" in " ".join(args) and not (paths["partial"] / "config.json").is_file():
        pytest.skip("the real partial GPT-2 small checkpoint is not in ../shared")
    monkeypatch.chdir(tmp_path)  # a command that ignored --out would write under poslens-out/ here
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, _fill(args, paths, out), catch_exceptions=True)
    err = r.stderr.strip()
    assert r.exit_code == 2, (r.exit_code, r.output, repr(r.exception))
    assert "Traceback" not in r.output
    assert len(err.splitlines()) == 1, err
    assert words.lower() in err.lower(), err
    assert err.startswith("poslens: error: "), err
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert not (tmp_path / "poslens-out").exists()


def test_the_table_is_big_enough(capsys):
    with capsys.disabled():
        print(f"\nbad-input table: {len(CASES)} cases over "
              f"{len({c for c, _, _ in CASES if c})} commands")
    assert len(CASES) >= 40


def test_help_states_the_ranges_the_options_accept():
    """A range an Options dataclass enforces, open ends included, is the one --help shows."""
    for args, shown in ((["sinks"], "0.0<x<1.0"), (["position-probe"], "0.0<x<1.0"), (["dup-heads"], "0.0<x<=1.0"),
                        (["sweep"], "x>0"), (["helix"], "base of the sinusoidal encoding [default: 10000.0; x>1.0]"),
                        (["helix"], "(at most n_components) [default: 3; x>=2]"), (["helix"], "cut [default: 100; x>=1]"),
                        (["helix"], "taken one smaller) [default: 51; x>=5]")):
        text = " ".join(CliRunner().invoke(cli, [*args, "--help"]).output.split())
        assert shown in text, (args, text)
