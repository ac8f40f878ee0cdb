"""Lazy access to a GPT-2 checkpoint: the config and only the tensors asked for.

Tensors are read one at a time: from ``model.safetensors`` through a memory map, from a
sharded safetensors index, or from ``pytorch_model.bin`` via ``torch.load(mmap=True)``.
Names are normalised to the hub's bare style (``wpe.weight``, ``h.0.attn.c_attn.weight``),
so both ``wpe.weight`` and ``transformer.wpe.weight`` checkpoints read the same way.

>>> ckpt = Checkpoint.from_dir("../shared/data/gpt2-small-partial")   # doctest: +SKIP
>>> ckpt.get("wpe.weight").shape                                      # doctest: +SKIP
torch.Size([1024, 768])
>>> ckpt.reads                                                        # doctest: +SKIP
['wpe.weight']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CorruptCheckpointError, MissingTensorError
from .config import ModelConfig

PREFIX = "transformer."
# Buffers some checkpoints carry that are not parameters of the model.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def normalise_name(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _is_parameter(name: str) -> bool:
    return not name.endswith(_IGNORED_SUFFIXES)


class _SafetensorsFile:
    """One safetensors file, opened lazily; maps normalised names to stored names."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        try:
            self._handle = safe_open(str(path), framework="pt")
            stored = list(self._handle.keys())
        except Exception as exc:  # safetensors raises its own error types for bad headers
            raise CorruptCheckpointError(
                f"{path} is not a readable safetensors file ({exc}); re-download or re-save the checkpoint"
            ) from exc
        self.names = {normalise_name(n): n for n in stored if _is_parameter(normalise_name(n))}

    def get(self, name: str) -> torch.Tensor:
        try:
            return self._handle.get_tensor(self.names[name])
        except Exception as exc:
            raise CorruptCheckpointError(
                f"tensor '{name}' in {self.path} cannot be read ({exc}); the file may be truncated"
            ) from exc

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(self.names[name]).get_shape())


class _StateDict:
    """Tensors already in a dict (loaded whole, or handed over in memory), under normalised names."""

    def __init__(self, sd: dict[str, torch.Tensor]):
        self._sd = {normalise_name(k): v for k, v in sd.items() if _is_parameter(normalise_name(k))}
        self.names = {k: k for k in self._sd}

    def get(self, name: str) -> torch.Tensor:
        return self._sd[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._sd[name].shape)


def _load_bin(path: Path) -> _StateDict:
    try:
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorruptCheckpointError(f"{path} cannot be read as a PyTorch state dict ({exc})") from exc
    return _StateDict(sd)


@dataclass
class Checkpoint:
    """A GPT-2 checkpoint on disk, read lazily.

    ``reads`` lists every tensor read so far, in order, so callers (and tests) can check
    that an analysis touched only what it needed.
    """

    path: Path
    config: ModelConfig
    label: str
    revision: str | None = None
    _files: list = field(default_factory=list, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    reads: list[str] = field(default_factory=list)
    # name -> sha256 of the tensor's stored bytes, for every tensor read while ``fingerprint`` is on
    fingerprint: bool = False
    fingerprints: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, path: str | Path, label: str | None = None, revision: str | None = None) -> Checkpoint:
        from ..errors import UnknownModelError

        path = Path(path)
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{path} has no config.json; point --model at a GPT-2 checkpoint directory")
        config = ModelConfig.from_file(path / "config.json")
        ckpt = cls(path=path, config=config, label=label or str(path), revision=revision)
        ckpt._open_weights()
        return ckpt

    @classmethod
    def from_remote(cls, folder: str | Path, url: str, cache_dir: Path, label: str,
                    revision: str | None = None) -> Checkpoint:
        """Config (and tokenizer) from ``folder``; tensors read one by one from the hub file at ``url``.

        ``url`` names a ``model.safetensors``; when the repository has none, its
        ``pytorch_model.bin`` beside it is range-read instead (the Stanford CRFM runs publish
        only that), cached beside ``cache_dir``.
        """
        from huggingface_hub.errors import EntryNotFoundError

        from .remote import RemoteSafetensorsFile, RemoteTorchBinFile

        folder = Path(folder)
        ckpt = cls(path=folder, config=ModelConfig.from_file(folder / "config.json"), label=label, revision=revision)
        try:
            f = RemoteSafetensorsFile(url, cache_dir, normalise=normalise_name, keep=_is_parameter)
        except EntryNotFoundError:
            if not str(url).endswith("model.safetensors"):
                raise
            f = RemoteTorchBinFile(str(url)[: -len("model.safetensors")] + "pytorch_model.bin",
                                   Path(cache_dir).parent / "pytorch_model.bin", normalise=normalise_name,
                                   keep=_is_parameter)
        ckpt._files = [f]
        ckpt._index = {n: 0 for n in f.names}
        return ckpt

    def _open_weights(self) -> None:
        p = self.path
        if (p / "model.safetensors").is_file():
            self._files = [_SafetensorsFile(p / "model.safetensors")]
        elif (p / "model.safetensors.index.json").is_file():
            try:
                index = json.loads((p / "model.safetensors.index.json").read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise CorruptCheckpointError(f"{p / 'model.safetensors.index.json'} is malformed ({exc})") from exc
            self._files = [_SafetensorsFile(p / f) for f in sorted(set(index.values()))]
        elif (p / "pytorch_model.bin").is_file():
            self._files = [_load_bin(p / "pytorch_model.bin")]
        else:
            raise CorruptCheckpointError(
                f"{p} has config.json but no weights ({', '.join(WEIGHT_FILES)}); copy the weights beside it"
            )
        for i, f in enumerate(self._files):
            for n in f.names:
                self._index.setdefault(n, i)

    # ---- queries --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Normalised names of every tensor stored (a tied ``lm_head.weight`` copy is not a parameter)."""
        return sorted(n for n in self._index if n != "lm_head.weight" or not self.config.tied_embeddings)

    def has(self, name: str) -> bool:
        return name in self._index

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self._index:
            raise MissingTensorError(name, None, self.label)
        return self._files[self._index[name]].shape(name)

    def get(self, name: str, needed_for: str | None = None) -> torch.Tensor:
        """Read one tensor (float32 on the CPU). Raises MissingTensorError naming what needed it."""
        if name not in self._index:
            raise MissingTensorError(name, needed_for, self.label)
        t = self._files[self._index[name]].get(name)
        self.reads.append(name)
        if self.fingerprint:
            self.fingerprints[name] = tensor_sha256(t)
        return t.to("cpu", torch.float32) if t.is_floating_point() else t  # an in-memory state dict may be on a GPU

    def missing(self) -> list[str]:
        """Names a complete GPT-2 checkpoint of this shape has that this one lacks."""
        return [n for n in expected_names(self.config) if n not in self._index]

    def tokenizer_files(self) -> dict[str, Path]:
        return {n: self.path / n for n in ("tokenizer.json", "vocab.json", "merges.txt") if (self.path / n).is_file()}


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of a tensor's raw little-endian bytes as stored (before any conversion), the
    convention of published fingerprint lists (``gpt2-small-sha256.tsv``): two checkpoints
    hold bit-identical tensors exactly when these agree.

    >>> tensor_sha256(torch.zeros(2)) == tensor_sha256(torch.zeros(2)), tensor_sha256(torch.zeros(2)) == tensor_sha256(torch.zeros(3))
    (True, False)
    """
    import hashlib

    t = t.detach().to("cpu").contiguous()
    return hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()


def expected_names(cfg: ModelConfig) -> list[str]:
    from .families import family_of

    return list(family_of(cfg).shapes(cfg))


class StateDictCheckpoint(Checkpoint):
    """A checkpoint backed by an in-memory state dict (e.g. from a loaded HF model)."""

    @classmethod
    def from_state_dict(
        cls, state_dict: dict[str, torch.Tensor], config: ModelConfig, label: str = "<state dict>"
    ) -> StateDictCheckpoint:
        ckpt = cls(path=Path("."), config=config, label=label)
        f = _StateDict({k: v.detach() for k, v in state_dict.items()})
        ckpt._files, ckpt._index = [f], {k: 0 for k in f.names}
        return ckpt

    in_memory = True  # no files beside it: its path is a placeholder

    def tokenizer_files(self) -> dict[str, Path]:
        return {}

