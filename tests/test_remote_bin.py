"""pytorch_model.bin read tensor by tensor over HTTP range requests: the zip's directory, the
pickle record, then one storage entry; served by a range-serving HTTP server on the loopback
address (these machines have no hub) from real ``torch.save`` files."""

from __future__ import annotations

import io
import pickle
import zipfile

import pytest
import torch

from poslens.errors import CorruptCheckpointError
from poslens.models import load_weights, registry
from poslens.models import remote as R
from poslens.testing import random_state_dict, small_config, write_checkpoint
from poslens.testing.hub import FakeHub


@pytest.fixture()
def served(tmp_path):
    sd = {"transformer.wpe.weight": torch.randn(128, 64), "transformer.wte.weight": torch.randn(512, 64),
          "transformer.h.0.attn.c_attn.weight": torch.randn(64, 192).to(torch.bfloat16),
          "scalar": torch.tensor(3.5), "half": torch.randn(5, 3).half()}
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: one storage, two names
    sd["view"] = sd["transformer.wpe.weight"][3:10, 5:9]  # a strided view into another tensor's storage
    repo = tmp_path / "hub" / "o" / "m" / "main"
    repo.mkdir(parents=True)
    torch.save(sd, repo / "pytorch_model.bin")
    torch.save(sd, repo / "legacy.bin", _use_new_zipfile_serialization=False)
    with FakeHub(tmp_path / "hub") as hub:
        yield {"sd": sd, "hub": hub, "url": hub.endpoint + "/o/m/resolve/main/", "file": repo / "pytorch_model.bin"}


def test_one_tensor_costs_three_small_requests_and_is_cached(served, tmp_path):
    hub, sd = served["hub"], served["sd"]
    f = R.RemoteTorchBinFile(served["url"] + "pytorch_model.bin", tmp_path / "c",
                             normalise=lambda n: n.removeprefix("transformer."))
    assert len(hub.requests) == 2  # the directory at the end of the zip, then data.pkl
    w = f.get("wpe.weight")
    assert torch.equal(w, sd["transformer.wpe.weight"]) and len(hub.requests) == 3
    assert hub.requests[-1][2].startswith("bytes=")
    size = served["file"].stat().st_size
    assert hub.bytes_sent < R.TAIL_PROBE + 4096 + w.numel() * 4 + R._LOCAL_SLACK + 100 < size / 3
    for name in f.names:  # every dtype, a 0-d tensor, a tied pair and a strided view come back exact
        got, want = f.get(name), sd[f.names[name]]
        assert got.dtype == want.dtype and torch.equal(got, want), name
    assert f.shape("view") == (7, 4)
    # a second reader (another process) reads the index and the tensors from the cache
    n = len(hub.requests)
    again = R.RemoteTorchBinFile(served["url"] + "pytorch_model.bin", tmp_path / "c",
                                 normalise=lambda n: n.removeprefix("transformer."))
    assert torch.equal(again.get("view"), sd["view"]) and len(hub.requests) == n


def test_damaged_cache_entry_is_fetched_again(served, tmp_path):
    f = R.RemoteTorchBinFile(served["url"] + "pytorch_model.bin", tmp_path / "c")
    f.get("half")
    entry = tmp_path / "c" / "half.safetensors"
    entry.write_bytes(entry.read_bytes()[:20])
    (tmp_path / "c" / "index.json").write_text("{not json")
    n = len(served["hub"].requests)
    g = R.RemoteTorchBinFile(served["url"] + "pytorch_model.bin", tmp_path / "c")
    assert torch.equal(g.get("half"), served["sd"]["half"])
    assert len(served["hub"].requests) == n + 3


def test_legacy_file_is_downloaded_whole_and_said_once(served, tmp_path, capsys):
    url = served["url"] + "legacy.bin"
    f = R.RemoteTorchBinFile(url, tmp_path / "c")
    assert torch.equal(f.get("view"), served["sd"]["view"])
    R.RemoteTorchBinFile(url, tmp_path / "c2")
    err = capsys.readouterr().err
    assert err.count("legacy (non-zip) torch file") == 1


def test_pickle_globals_are_never_resolved(tmp_path):
    """A data.pkl naming any callable outside the allow-list is refused, not run."""

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(CorruptCheckpointError, match="print, which a plain state dict"):
        R.parse_state_dict_pickle(zipfile.ZipFile(buf).read("archive/data.pkl"))


def test_registry_range_reads_a_bin_only_hub_repo(tmp_path, monkeypatch):
    """The Stanford runs publish only pytorch_model.bin: NAME@REV reads W_pos, not the file."""
    from huggingface_hub import constants

    cfg = small_config()
    sd = random_state_dict(cfg, seed=3)
    write_checkpoint(tmp_path / "hub" / "o" / "run" / "checkpoint-100", cfg, sd, fmt="bin", prefix=True)
    with FakeHub(tmp_path / "hub") as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(registry, "_REACHABLE", {})
        monkeypatch.setenv("POSLENS_CACHE", str(tmp_path / "pc"))
        w = load_weights("o/run@checkpoint-100")
        assert torch.equal(w.W_pos, sd["wpe.weight"])
        size = (tmp_path / "hub" / "o" / "run" / "checkpoint-100" / "pytorch_model.bin").stat().st_size
        ranged = [r for r in hub.requests if r[1].endswith("pytorch_model.bin")]
        assert all(r[2] for r in ranged) and len(ranged) == 3
        assert hub.bytes_sent < 0.15 * size
        with pytest.raises(Exception, match="revision"):
            load_weights("o/run@checkpoint-7")
