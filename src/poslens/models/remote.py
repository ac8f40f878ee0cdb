"""Hub safetensors read tensor by tensor over HTTP range requests, without downloading the file.

GPT-2 XL's ``model.safetensors`` is 6.4 GB; its W_pos is 6.5 MB. A safetensors file is an
8-byte header length, a JSON header giving each tensor's dtype, shape and byte range, then
the data; so one request reads the header and one more reads each tensor asked for. Each
tensor fetched is kept in poslens's cache (``~/.cache/poslens/hub``, or ``$POSLENS_CACHE``)
as a one-tensor safetensors file, keyed by the repository's commit, so it is fetched once.

>>> from poslens.models.remote import RemoteSafetensorsFile         # doctest: +SKIP
>>> f = RemoteSafetensorsFile(url, cache_dir)                       # doctest: +SKIP
>>> f.get("wpe.weight").shape                                       # doctest: +SKIP
torch.Size([1600, 1024])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import CorruptCheckpointError, OfflineError
from ..io import atomic_write_bytes

HEADER_PROBE = 100_000  # one request covers the header of almost every safetensors file


def cache_root() -> Path:
    return Path(os.environ.get("POSLENS_CACHE") or Path.home() / ".cache" / "poslens") / "hub"


def fetch_range(url: str, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (inclusive) of a hub file, through huggingface_hub's session and auth."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        r = get_session().get(url, headers={**build_hf_headers(), "range": f"bytes={start}-{end}"})
        hf_raise_for_status(r)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        raise  # the file is not there: the caller decides (e.g. download a .bin instead)
    except OSError as exc:  # connection failures and other HTTP errors
        raise OfflineError(f"cannot read {url} from the hub ({exc}); check the connection, or download the "
                           "model with `hf download` and set HF_HUB_OFFLINE=1") from exc
    return r.content


def _one_tensor_file(name: str, dtype: str, shape: list[int], data: bytes) -> bytes:
    header = json.dumps({name: {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)  # the format aligns the data to 8 bytes
    return len(header).to_bytes(8, "little") + header + data


class RemoteSafetensorsFile:
    """One safetensors file on the hub, with the interface of a local one (``names``, ``get``, ``shape``)."""

    def __init__(self, url: str, cache_dir: Path, normalise=lambda n: n, keep=lambda n: True):
        self.url, self.cache_dir, self.path = url, Path(cache_dir), url
        header_file = self.cache_dir / "header.json"
        if header_file.is_file():
            self.header, self.data_start = json.loads(header_file.read_text())
        else:
            head = fetch_range(url, 0, HEADER_PROBE - 1)
            if len(head) < 8:
                raise CorruptCheckpointError(f"{url} is not a safetensors file (only {len(head)} bytes)")
            n = int.from_bytes(head[:8], "little")
            raw = head[8:8 + n] if 8 + n <= len(head) else fetch_range(url, 8, 8 + n - 1)
            try:
                self.header = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CorruptCheckpointError(f"{url} has no readable safetensors header ({exc})") from exc
            self.data_start = 8 + n
            atomic_write_bytes(header_file, json.dumps([self.header, self.data_start]).encode())
        self.names = {normalise(k): k for k in self.header if k != "__metadata__" and keep(normalise(k))}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[self.names[name]]["shape"])

    def get(self, name: str) -> torch.Tensor:
        from safetensors.torch import load

        stored = self.names[name]
        cached = self.cache_dir / f"{stored}.safetensors"
        if cached.is_file():
            try:
                return load(cached.read_bytes())[stored]
            except Exception:  # a damaged cache entry is fetched again, never trusted
                cached.unlink(missing_ok=True)
        info = self.header[stored]
        a, b = info["data_offsets"]
        data = fetch_range(self.url, self.data_start + a, self.data_start + b - 1) if b > a else b""
        if len(data) != b - a:
            raise CorruptCheckpointError(f"{self.url}: tensor '{stored}' came back with {len(data)} of {b - a} bytes")
        blob = _one_tensor_file(stored, info["dtype"], info["shape"], data)
        atomic_write_bytes(cached, blob)
        return load(blob)[stored]
