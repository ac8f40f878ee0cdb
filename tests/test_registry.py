"""Model names resolve to the right sources; unknown names get close suggestions."""

from __future__ import annotations

import re

import pytest

from poslens.errors import OfflineError, UnknownModelError
from poslens.models import registry
from poslens.models.registry import FAMILIES, STANFORD_CHECKPOINTS, family, resolve


@pytest.mark.parametrize(
    "name, repo",
    [
        ("gpt2", "openai-community/gpt2"),
        ("gpt2-small", "openai-community/gpt2"),
        ("GPT2-Medium", "openai-community/gpt2-medium"),
        ("gpt2-large", "openai-community/gpt2-large"),
        ("gpt2-xl", "openai-community/gpt2-xl"),
        ("distilgpt2", "distilbert/distilgpt2"),
        ("alias", "stanford-crfm/alias-gpt2-small-x21"),
        ("battlestar", "stanford-crfm/battlestar-gpt2-small-x49"),
        ("caprica", "stanford-crfm/caprica-gpt2-small-x81"),
        ("darkmatter", "stanford-crfm/darkmatter-gpt2-small-x343"),
        ("expanse", "stanford-crfm/expanse-gpt2-small-x777"),
        ("arwen", "stanford-crfm/arwen-gpt2-medium-x21"),
        ("beren", "stanford-crfm/beren-gpt2-medium-x49"),
        ("celebrimbor", "stanford-crfm/celebrimbor-gpt2-medium-x81"),
        ("durin", "stanford-crfm/durin-gpt2-medium-x343"),
        ("eowyn", "stanford-crfm/eowyn-gpt2-medium-x777"),
        ("stanford-gpt2-small-a", "stanford-crfm/alias-gpt2-small-x21"),
        ("openai-community/gpt2-xl", "openai-community/gpt2-xl"),
        ("someone/my-gpt2", "someone/my-gpt2"),  # any hub id passes through
    ],
)
def test_names_resolve_to_hub_repos(name, repo):
    src = resolve(name)
    assert src.repo_id == repo and src.local_dir is None


def test_stanford_revisions():
    assert len(STANFORD_CHECKPOINTS) == 609  # as published: 609 checkpoints per run
    assert STANFORD_CHECKPOINTS[0] == 0 and STANFORD_CHECKPOINTS[-1] == 400000
    src = resolve("battlestar@1000")
    assert src.revision == "checkpoint-1000" and src.label == "battlestar@checkpoint-1000"
    assert resolve("alias", revision="main").revision == "main"
    with pytest.raises(UnknownModelError, match="nearest is 1050"):
        resolve("battlestar@1049")


def test_local_directory_and_embedded(small_ckpt):
    src = resolve(str(small_ckpt))
    assert src.local_dir == small_ckpt and src.repo_id is None
    tiny = resolve("poslens-tiny")
    assert tiny.local_dir == registry.EMBEDDED_DIR / "tiny"


@pytest.mark.parametrize(
    "name, words",
    [
        ("gpt2-smal", "did you mean 'gpt2-small'"),
        ("batlestar", "did you mean 'battlestar'"),
        ("./no/such/dir", "does not exist"),
        ("", "empty model name"),
    ],
)
def test_unknown_names_say_what_to_do(name, words):
    with pytest.raises(UnknownModelError, match=words):
        resolve(name)


def test_a_file_is_not_taken_for_a_missing_directory_or_a_hub_id(small_ckpt, tmp_path, monkeypatch):
    with pytest.raises(UnknownModelError, match=f"is a file.*here: {re.escape(str(small_ckpt))}"):
        resolve(str(small_ckpt / "model.safetensors"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "model.txt").write_text("x")
    (tmp_path / "weights").write_text("x")
    for spec in ("notes/model.txt", "weights"):  # an owner/name and a bare name that exist as files
        with pytest.raises(UnknownModelError, match="is a file, not a checkpoint directory; give the directory"):
            resolve(spec)


def test_families():
    assert family("gpt2") == FAMILIES["gpt2"] and len(family("gpt2")) == 9
    with pytest.raises(UnknownModelError, match="did you mean 'gpt2'"):
        family("gtp2")


def test_offline_without_cache_says_how_to_fix(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(OfflineError) as e:
        registry.open_checkpoint("gpt2-medium")
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and "hf download openai-community/gpt2-medium" in msg and "--model" in msg
    with pytest.raises(OfflineError, match=r"hf download stanford-crfm/alias-gpt2-small-x21 --revision checkpoint-0`"):
        registry.open_checkpoint("alias@0")  # the command it suggests fetches the checkpoint asked for
    assert "no directory" not in msg  # a known name is no mistyped folder
    with pytest.raises(OfflineError, match=r"cannot load runs/mine: there is no directory runs/mine here; as a hub id, "
                                           r"HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"):
        registry.open_checkpoint("runs/mine")  # `poslens train --out runs/mine` not run yet, or mistyped


def test_hub_cache_is_read_offline(tmp_path, monkeypatch, small_ckpt):
    """A model in the Hugging Face cache loads with HF_HUB_OFFLINE=1 (the layout users have)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = cache / "models--someone--tiny-gpt2" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for f in small_ckpt.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (cache / "models--someone--tiny-gpt2" / "refs").mkdir()
    (cache / "models--someone--tiny-gpt2" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    ckpt = registry.open_checkpoint("someone/tiny-gpt2")
    assert ckpt.config.n_layers == 2 and ckpt.get("wpe.weight").shape == (128, 64)


def test_unreachable_hub_fails_fast_from_the_cache(tmp_path, monkeypatch):
    """No internet (and no HF_HUB_OFFLINE): the cache is read at once, no minute of retries."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "hub_reachable", lambda: False)
    t0 = time.perf_counter()
    with pytest.raises(OfflineError, match="cannot be reached"):
        registry.open_checkpoint("gpt2-large")
    assert time.perf_counter() - t0 < 5


def test_pythia_suite_and_its_revisions():
    from poslens.models.registry import PYTHIA_CHECKPOINTS

    assert len(PYTHIA_CHECKPOINTS) == 154  # as published: step0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000
    assert PYTHIA_CHECKPOINTS[:12] == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
    assert PYTHIA_CHECKPOINTS[-1] == 143000
    for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"):
        for suffix in ("", "-deduped"):
            src = resolve(f"pythia-{size}{suffix}@64")
            assert src.repo_id == f"EleutherAI/pythia-{size}{suffix}" and src.revision == "step64"
    assert resolve("EleutherAI/pythia-160m@step143000").revision == "step143000"
    assert resolve("pythia-1b@main").revision == "main"  # a branch name passes through
    with pytest.raises(UnknownModelError, match="no checkpoint at step 1500; the nearest is 1000"):
        resolve("pythia-410m@step1500")
    assert FAMILIES["pythia"][0] == "pythia-70m" and len(FAMILIES["pythia-deduped"]) == 8
    assert {"gpt-neo", "opt", "llama-style"} <= set(FAMILIES)
