"""Hub checkpoints read tensor by tensor with HTTP range requests (served here from a local
file: these machines have no hub), each tensor cached after its first read."""

from __future__ import annotations

import pytest
import torch

from poslens.errors import CorruptCheckpointError
from poslens.models import load_weights, registry
from poslens.models import remote as R
from poslens.testing import random_state_dict, small_config, write_checkpoint


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """A fake hub: one repo whose model.safetensors is served by byte ranges; records requests."""
    cfg = small_config()
    sd = random_state_dict(cfg, seed=4)
    repo = write_checkpoint(tmp_path / "repo", cfg, sd, prefix=True)
    blob = (repo / "model.safetensors").read_bytes()
    requests: list[tuple[int, int]] = []

    def fetch_range(url, start, end):
        assert url.endswith("model.safetensors")
        requests.append((start, end))
        return blob[start:end + 1]

    monkeypatch.setattr(R, "fetch_range", fetch_range)
    monkeypatch.setenv("POSLENS_CACHE", str(tmp_path / "cache"))
    snapshot = tmp_path / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text((repo / "config.json").read_text())
    return {"cfg": cfg, "sd": sd, "blob": blob, "requests": requests, "snapshot": snapshot}


def test_w_pos_costs_two_small_requests_and_is_cached(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(registry, "_cached", lambda source, fn: False)
    monkeypatch.setattr(registry, "hub_reachable", lambda: True)
    monkeypatch.setattr(registry, "download", lambda source, weights=True: hub["snapshot"])
    w = load_weights("someone/remote-gpt2")
    assert w.cfg.n_layers == hub["cfg"].n_layers
    assert torch.equal(w.W_pos, hub["sd"]["wpe.weight"])
    reqs = hub["requests"]
    assert len(reqs) == 2  # the header, then W_pos's bytes only
    assert reqs[1][1] - reqs[1][0] + 1 == hub["sd"]["wpe.weight"].numel() * 4
    # what came back: the header probe (100 kB) and W_pos, out of a 567 kB file
    assert sum(len(hub["blob"][a:b + 1]) for a, b in reqs) == R.HEADER_PROBE + hub["sd"]["wpe.weight"].numel() * 4
    # a second process reads header and tensor from the cache: no request at all
    again = load_weights("someone/remote-gpt2")
    assert torch.equal(again.W_pos, hub["sd"]["wpe.weight"]) and len(reqs) == 2
    assert torch.equal(again.get("blocks.1.attn.W_Q"), w.get("blocks.1.attn.W_Q"))
    assert len(reqs) == 3


def test_damaged_cache_entry_is_fetched_again(hub, tmp_path):
    f = R.RemoteSafetensorsFile("https://hub/x/model.safetensors", tmp_path / "c", normalise=lambda n: n.split(".", 1)[1])
    f.get("wpe.weight")
    entry = tmp_path / "c" / "transformer.wpe.weight.safetensors"
    entry.write_bytes(entry.read_bytes()[:50])
    n = len(hub["requests"])
    assert torch.equal(f.get("wpe.weight"), hub["sd"]["wpe.weight"])
    assert len(hub["requests"]) == n + 1


def test_not_a_safetensors_file(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "fetch_range", lambda url, a, b: b"\x10\x00\x00\x00\x00\x00\x00\x00<html>oops</html>"[a:b + 1])
    with pytest.raises(CorruptCheckpointError, match="no readable safetensors header"):
        R.RemoteSafetensorsFile("https://hub/x/model.safetensors", tmp_path / "c")


def test_offline_or_cached_models_are_not_range_read(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert registry._remote_checkpoint(registry.resolve("gpt2")) is None


def test_a_server_that_ignores_range_still_gives_the_bytes_asked_for(tmp_path):
    """http.server answers every GET with the whole file (200, no Range support): each kind of
    range, a suffix range included, is cut from it as a range-serving hub would send it."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    blob = bytes(range(256)) * 4
    (tmp_path / "f.bin").write_bytes(blob)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
        assert R.fetch_range(url, 10, 19) == blob[10:20]
        assert R.fetch_range(url, 1000, None) == blob[1000:]
        assert R.fetch_range(url, -8, None) == blob[-8:]
        assert R.fetch_range(url, 0, None) == blob
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
