"""Hub checkpoints read tensor by tensor over HTTP range requests, without downloading the file.

GPT-2 XL's ``model.safetensors`` is 6.4 GB; its W_pos is 6.5 MB. A safetensors file is an
8-byte header length, a JSON header giving each tensor's dtype, shape and byte range, then
the data; so one request reads the header and one more reads each tensor asked for. Each
tensor fetched is kept in poslens's cache (``~/.cache/poslens/hub``, or ``$POSLENS_CACHE``)
as a one-tensor safetensors file, keyed by the repository's commit, so it is fetched once.

A ``pytorch_model.bin`` (what the Stanford CRFM runs publish, ~500 MB per checkpoint for
a 3 MB W_pos) is a zip archive written by ``torch.save``: :class:`RemoteTorchBinFile`
reads its central directory from the end of the file, then the pickle record
(``data.pkl``, read by an unpickler that resolves no global from the file: every global is
looked up in an allow-list of inert stand-ins, so nothing in it runs), then only the bytes
of the one storage entry a tensor views. A legacy (pre-1.6, non-zip) file has no
directory to read; it is downloaded whole, once, and said so.

>>> from poslens.models.remote import RemoteSafetensorsFile         # doctest: +SKIP
>>> f = RemoteSafetensorsFile(url, cache_dir)                       # doctest: +SKIP
>>> f.get("wpe.weight").shape                                       # doctest: +SKIP
torch.Size([1024, 1600])
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..errors import CorruptCheckpointError, OfflineError
from ..io import atomic_write_bytes

HEADER_PROBE = 100_000  # one request covers the header of almost every safetensors file


def cache_root() -> Path:
    return Path(os.environ.get("POSLENS_CACHE") or Path.home() / ".cache" / "poslens") / "hub"


# Bytes received by fetch_range in this process (benchmarks and sweep cells read it).
BYTES_FETCHED = 0


def fetch_range(url: str, start: int, end: int | None) -> bytes:
    """Bytes ``start..end`` (inclusive) of a hub file, through huggingface_hub's session and auth.

    ``end=None`` reads to the end of the file; a negative ``start`` with ``end=None`` reads
    the last ``-start`` bytes (an HTTP suffix range).
    """
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        spec = f"bytes={start}" if start < 0 else f"bytes={start}-{'' if end is None else end}"
        r = get_session().get(url, headers={**build_hf_headers(), "range": spec})
        hf_raise_for_status(r)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        raise  # the file is not there: the caller decides (e.g. download a .bin instead)
    except OSError as exc:  # connection failures and other HTTP errors
        raise OfflineError(f"cannot read {url} from the hub ({exc}); check the connection, or download the "
                           "model with `hf download` and set HF_HUB_OFFLINE=1") from exc
    global BYTES_FETCHED
    BYTES_FETCHED += len(r.content)
    if r.status_code == 200 and (start != 0 or end is not None):
        # A server that ignores Range sends the whole file: keep what was asked for (a negative
        # start, the suffix range, slices from the end as it does in Python).
        body = r.content
        return body[start:] if end is None else body[start:end + 1]
    return r.content


def _one_tensor_file(name: str, dtype: str, shape: list[int], data: bytes) -> bytes:
    header = json.dumps({name: {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)  # the format aligns the data to 8 bytes
    return len(header).to_bytes(8, "little") + header + data


def _from_cache(cached: Path, stored: str) -> torch.Tensor | None:
    """A tensor fetched before, kept as a one-tensor file; None when absent or damaged (a damaged
    entry is deleted and fetched again, never trusted)."""
    from safetensors.torch import load

    if cached.is_file():
        try:
            return load(cached.read_bytes())[stored]
        except Exception:
            cached.unlink(missing_ok=True)
    return None


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
        hit = _from_cache(cached, stored)
        if hit is not None:
            return hit
        info = self.header[stored]
        a, b = info["data_offsets"]
        data = fetch_range(self.url, self.data_start + a, self.data_start + b - 1) if b > a else b""
        if len(data) != b - a:
            raise CorruptCheckpointError(f"{self.url}: tensor '{stored}' came back with {len(data)} of {b - a} bytes")
        blob = _one_tensor_file(stored, info["dtype"], info["shape"], data)
        atomic_write_bytes(cached, blob)
        return load(blob)[stored]


# ----------------------------------------------------------------------------- pytorch_model.bin

TAIL_PROBE = 8_192  # the end-of-directory records and, for small models, the whole directory
_LOCAL_HEADER = 30  # fixed part of a zip local file header
_LOCAL_SLACK = 256  # room for the name and extra field of a local header, read with the data

# torch.save's storage classes -> safetensors dtype names
_STORAGE_DTYPES = {
    "FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL",
}
_TORCH_DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_LEGACY_SAID: set[str] = set()


class _Storage:
    def __init__(self, dtype: str, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _TensorRecord:
    def __init__(self, storage: _Storage, offset: int, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, int(offset), list(shape), list(stride)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    return _TensorRecord(storage, offset, size, stride)


def _rebuild_parameter(record, *_rest):
    return record


class _OrderedDict(dict):
    pass


_ALLOWED = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


def parse_state_dict_pickle(data: bytes, where: str = "data.pkl") -> dict[str, _TensorRecord]:
    """Tensor records (storage key, dtype, offset, shape, stride) of a ``torch.save``'d state dict's
    ``data.pkl``, without running anything from it: globals resolve only to inert stand-ins.

    >>> import io, torch, zipfile
    >>> buf = io.BytesIO(); torch.save({"w": torch.zeros(2, 3)}, buf)
    >>> z = zipfile.ZipFile(buf); pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
    >>> r = parse_state_dict_pickle(z.read(pkl))["w"]
    >>> r.storage.dtype, r.shape, r.stride
    ('F32', [2, 3], [3, 1])
    """
    import io
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return _ALLOWED[(module, name)]
            except KeyError:
                raise CorruptCheckpointError(
                    f"{where} refers to {module}.{name}, which a plain state dict of tensors never does; "
                    "poslens reads no such file remotely (set POSLENS_FULL_DOWNLOAD=1 to load it whole)"
                ) from None

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                    and isinstance(pid[1], _StorageType)):
                raise CorruptCheckpointError(f"{where} has a storage record poslens cannot read ({pid!r:.80})")
            return _Storage(_STORAGE_DTYPES[pid[1].name], str(pid[2]), int(pid[4]))

    try:
        obj = Restricted(io.BytesIO(data)).load()
    except CorruptCheckpointError:
        raise
    except Exception as exc:
        raise CorruptCheckpointError(f"{where} is not a readable pickle of a state dict ({exc})") from exc
    if not isinstance(obj, dict):
        raise CorruptCheckpointError(f"{where} holds a {type(obj).__name__}, not a state dict")
    return {str(k): v for k, v in obj.items() if isinstance(v, _TensorRecord)}


def _zip_directory(url: str) -> dict[str, tuple[int, int, int]] | None:
    """``{entry name: (local header offset, stored size, compression)}`` from the end of a zip
    file, in one request (two when the directory is larger than the probe); None if not a zip."""
    import struct

    tail = fetch_range(url, -TAIL_PROBE, None)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0:
        return None
    (_, _, _, n_entries, cd_size, cd_offset, _) = struct.unpack("<HHHHIIH", tail[i + 4:i + 22])
    anchor = i  # the record right after the directory: the end record, or the zip64 one before it
    k = tail.rfind(b"PK\x06\x06", 0, i)
    if k >= 0 and tail.rfind(b"PK\x06\x07", k, i) >= 0:
        n_entries, cd_size, cd_offset = struct.unpack("<QQQ", tail[k + 32:k + 56])
        anchor = k
    tail_start = cd_offset + cd_size - anchor  # where the probe starts in the file
    if 0 <= tail_start <= cd_offset:
        cd = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
    else:
        cd = fetch_range(url, cd_offset, cd_offset + cd_size - 1)
    entries: dict[str, tuple[int, int, int]] = {}
    p = 0
    for _ in range(n_entries):
        if cd[p:p + 4] != b"PK\x01\x02":
            raise CorruptCheckpointError(f"{url}: the zip central directory is damaged at entry {len(entries)}")
        method = struct.unpack("<H", cd[p + 10:p + 12])[0]
        comp_size, _usize = struct.unpack("<II", cd[p + 20:p + 28])
        n_name, n_extra, n_comment = struct.unpack("<HHH", cd[p + 28:p + 34])
        offset = struct.unpack("<I", cd[p + 42:p + 46])[0]
        name = cd[p + 46:p + 46 + n_name].decode("utf-8")
        extra = cd[p + 46 + n_name:p + 46 + n_name + n_extra]
        if 0xFFFFFFFF in (comp_size, offset):
            comp_size, offset = _zip64_sizes(extra, comp_size, _usize, offset)
        entries[name] = (offset, comp_size, method)
        p += 46 + n_name + n_extra + n_comment
    return entries


def _zip64_sizes(extra: bytes, comp: int, usize: int, offset: int) -> tuple[int, int]:
    import struct

    q = 0
    while q + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[q:q + 4])
        if tag == 1:
            vals = list(struct.unpack(f"<{size // 8}Q", extra[q + 4:q + 4 + size - size % 8]))
            if usize == 0xFFFFFFFF:
                vals.pop(0)
            if comp == 0xFFFFFFFF:
                comp = vals.pop(0)
            if offset == 0xFFFFFFFF:
                offset = vals.pop(0)
            break
        q += 4 + size
    return comp, offset


def _entry_bytes(url: str, offset: int, start: int, length: int) -> bytes:
    """``length`` bytes from ``start`` within the stored entry whose local header is at ``offset``."""
    import struct

    if length <= 0:
        return b""
    head = fetch_range(url, offset, offset + _LOCAL_HEADER + _LOCAL_SLACK + start + length - 1)
    if head[:4] != b"PK\x03\x04":
        raise CorruptCheckpointError(f"{url}: no zip entry at byte {offset}; the file changed or is damaged")
    n_name, n_extra = struct.unpack("<HH", head[26:30])
    data_at = _LOCAL_HEADER + n_name + n_extra + start
    if data_at + length <= len(head):
        return head[data_at:data_at + length]
    return fetch_range(url, offset + data_at, offset + data_at + length - 1)


class RemoteTorchBinFile:
    """A hub ``pytorch_model.bin`` (``torch.save`` zip), with the interface of a local file:
    ``names``, ``shape``, ``get``. Reads the directory and the pickle once (kept in
    ``cache_dir/index.json``), then each tensor's bytes only, each kept as a one-tensor file.

    >>> f = RemoteTorchBinFile(url, cache_dir)                # doctest: +SKIP
    >>> f.get("wpe.weight").shape                             # three range requests  # doctest: +SKIP
    torch.Size([1024, 768])
    """

    def __init__(self, url: str, cache_dir: Path, normalise=lambda n: n, keep=lambda n: True):
        self.url, self.cache_dir, self.path = url, Path(cache_dir), url
        self._whole = None
        index_file = self.cache_dir / "index.json"
        index = None
        if index_file.is_file():
            try:
                index = json.loads(index_file.read_text())
                self.entries, self.records = index["entries"], index["records"]
            except (ValueError, KeyError, TypeError):
                index = None  # a damaged index is read again, never trusted
        if index is None:
            entries = _zip_directory(url)
            if entries is None:
                self._legacy(normalise, keep)
                return
            pkl = next((n for n in entries if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise CorruptCheckpointError(f"{url} is a zip file but not a torch.save checkpoint (no data.pkl)")
            off, size, method = entries[pkl]
            if method != 0:
                raise CorruptCheckpointError(f"{url}: data.pkl is compressed, which torch.save never does")
            records = parse_state_dict_pickle(_entry_bytes(url, off, 0, size), f"{url} (data.pkl)")
            prefix = pkl[: -len("data.pkl")]
            self.entries = {k: v for k, v in entries.items() if k.startswith(prefix + "data/")}
            self.records = {
                k: {"key": prefix + "data/" + r.storage.key, "dtype": r.storage.dtype, "offset": r.offset,
                    "shape": r.shape, "stride": r.stride}
                for k, r in records.items()
            }
            atomic_write_bytes(index_file, json.dumps({"entries": self.entries, "records": self.records}).encode())
        self.names = {normalise(k): k for k in self.records if keep(normalise(k))}

    def _legacy(self, normalise, keep) -> None:
        import sys

        if self.url not in _LEGACY_SAID:
            _LEGACY_SAID.add(self.url)
            print(f"poslens: {self.url} is a legacy (non-zip) torch file; it cannot be range-read, so it is "
                  "downloaded whole", file=sys.stderr)
        whole = self.cache_dir / "whole.bin"
        if not whole.is_file():
            atomic_write_bytes(whole, fetch_range(self.url, 0, None))
        try:
            sd = torch.load(str(whole), map_location="cpu", weights_only=True)
        except Exception as exc:
            whole.unlink(missing_ok=True)
            raise CorruptCheckpointError(f"{self.url} cannot be read as a PyTorch state dict ({exc})") from exc
        self._whole = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
        self.records = {k: {"shape": list(v.shape)} for k, v in self._whole.items()}
        self.names = {normalise(k): k for k in self._whole if keep(normalise(k))}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.records[self.names[name]]["shape"])

    def get(self, name: str) -> torch.Tensor:
        stored = self.names[name]
        if self._whole is not None:
            return self._whole[stored]
        cached = self.cache_dir / f"{stored}.safetensors"
        hit = _from_cache(cached, stored)
        if hit is not None:
            return hit
        rec = self.records[stored]
        dtype, shape, stride = rec["dtype"], rec["shape"], rec["stride"]
        item = _TORCH_DTYPES[dtype].itemsize
        n = math.prod(shape)
        # the elements the view touches: offset .. offset + sum((size-1)*stride)
        span = 1 + sum((s - 1) * st for s, st in zip(shape, stride)) if n else 0
        off, size, method = self.entries[rec["key"]]
        if method != 0:
            raise CorruptCheckpointError(f"{self.url}: storage {rec['key']} is compressed, which torch.save never does")
        if (rec["offset"] + span) * item > size:
            raise CorruptCheckpointError(f"{self.url}: tensor '{stored}' reaches past its storage; the file is damaged")
        raw = _entry_bytes(self.url, off, rec["offset"] * item, span * item)
        if len(raw) != span * item:
            raise CorruptCheckpointError(f"{self.url}: tensor '{stored}' came back with {len(raw)} of {span * item} bytes")
        flat = torch.frombuffer(bytearray(raw), dtype=_TORCH_DTYPES[dtype]) if raw else torch.empty(0, dtype=_TORCH_DTYPES[dtype])
        t = flat.as_strided(shape, stride).contiguous() if n else flat.reshape(shape)
        blob = _one_tensor_file(stored, dtype, shape, t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        atomic_write_bytes(cached, blob)
        return t

