"""GPT-2 weights under TransformerLens names and shapes, loaded lazily per tensor.

Names follow TransformerLens's state dict: ``embed.W_E [d_vocab, d_model]``,
``pos_embed.W_pos [n_ctx, d_model]``, ``blocks.{l}.attn.W_Q [n_heads, d_model, d_head]``,
``blocks.{l}.attn.W_O [n_heads, d_head, d_model]``, ``blocks.{l}.mlp.W_in [d_model, d_mlp]``,
``blocks.{l}.ln1.w``, ``ln_final.w``, ``unembed.W_U [d_model, d_vocab]`` and so on. Stacked
views over layers (``weights.W_Q`` is ``[n_layers, n_heads, d_model, d_head]``) mirror
``HookedTransformer``'s properties.

>>> from poslens.models import load_weights
>>> w = load_weights("../shared/data/gpt2-small-partial")   # doctest: +SKIP
>>> w.W_pos.shape                                           # reads wpe.weight only  # doctest: +SKIP
torch.Size([1024, 768])
>>> w.has("embed.W_E")                                      # doctest: +SKIP
False
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch

from ..errors import InvalidInputError, MissingTensorError, suggest
from .checkpoint import Checkpoint, StateDictCheckpoint
from .config import ModelConfig

_LAYER = re.compile(r"^blocks\.(\d+)\.(.+)$")

# TransformerLens name (per layer) -> (HF tensor, how to turn it into the TL shape).
_ATTN_PARTS = {"Q": 0, "K": 1, "V": 2}


class Weights:
    """Lazily loaded, optionally processed GPT-2 weights.

    ``processing`` records, in order, every processing step applied (see
    :mod:`poslens.models.processing`); results copy it so a number always says what
    weights it came from.
    """

    def __init__(
        self,
        source: Checkpoint,
        overrides: dict[str, torch.Tensor] | None = None,
        processing: tuple[str, ...] = (),
    ):
        self.source = source
        self.cfg: ModelConfig = source.config
        self._overrides: dict[str, torch.Tensor] = dict(overrides or {})
        self._cache: dict[str, torch.Tensor] = {}
        self._raw: dict[str, torch.Tensor] = {}
        self.processing = tuple(processing)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> Weights:
        return cls(ckpt)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], config: ModelConfig, label="<state dict>") -> Weights:
        """From a GPT-2 state dict in Hugging Face names (``transformer.`` prefix optional)
        or TransformerLens names (``embed.W_E`` ...)."""
        if any(k.startswith(("embed.", "blocks.", "pos_embed.")) for k in state_dict):
            empty = StateDictCheckpoint.from_state_dict({}, config, label)
            return cls(empty, overrides={k: v.detach().to("cpu", torch.float32) for k, v in state_dict.items()})
        return cls(StateDictCheckpoint.from_state_dict(state_dict, config, label))

    @classmethod
    def from_hf_model(cls, model) -> Weights:
        """From an in-memory ``transformers`` GPT-2 model (``GPT2LMHeadModel`` or ``GPT2Model``)."""
        config = ModelConfig.from_hf_dict(model.config.to_dict(), source=type(model).__name__)
        return cls.from_state_dict(model.state_dict(), config, label=getattr(model, "name_or_path", "") or "<hf model>")

    @property
    def label(self) -> str:
        return self.source.label

    # ---- names -------------------------------------------------------------------------
    def names(self) -> list[str]:
        cfg = self.cfg
        out = ["embed.W_E", "pos_embed.W_pos"]
        for l in range(cfg.n_layers):
            p = f"blocks.{l}."
            out += [p + "ln1.w", p + "ln1.b"]
            out += [p + f"attn.{k}" for k in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")]
            out += [p + "ln2.w", p + "ln2.b"]
            out += [p + f"mlp.{k}" for k in ("W_in", "b_in", "W_out", "b_out")]
        out += ["ln_final.w", "ln_final.b", "unembed.W_U", "unembed.b_U"]
        return out

    def _hf_source(self, name: str) -> str | None:
        """The HF tensor a TL name is read from (None for derived zeros)."""
        if name == "embed.W_E" or name == "unembed.W_U":
            return "wte.weight"
        if name == "pos_embed.W_pos":
            return "wpe.weight"
        if name == "unembed.b_U":
            return None
        if name.startswith("ln_final."):
            return "ln_f." + ("weight" if name.endswith(".w") else "bias")
        m = _LAYER.match(name)
        if not m:
            raise KeyError(name)
        l, rest = int(m.group(1)), m.group(2)
        table = {
            "ln1.w": "ln_1.weight", "ln1.b": "ln_1.bias", "ln2.w": "ln_2.weight", "ln2.b": "ln_2.bias",
            "attn.W_O": "attn.c_proj.weight", "attn.b_O": "attn.c_proj.bias",
            "mlp.W_in": "mlp.c_fc.weight", "mlp.b_in": "mlp.c_fc.bias",
            "mlp.W_out": "mlp.c_proj.weight", "mlp.b_out": "mlp.c_proj.bias",
        }
        if rest in table:
            return f"h.{l}.{table[rest]}"
        if rest[:7] in ("attn.W_", "attn.b_") and rest[7:] in _ATTN_PARTS:
            return f"h.{l}.attn.c_attn.{'weight' if rest[5] == 'W' else 'bias'}"
        raise KeyError(name)

    def _check_name(self, name: str) -> None:
        m = _LAYER.match(name)
        if m and int(m.group(1)) >= self.cfg.n_layers:
            raise InvalidInputError(
                f"layer {m.group(1)} is out of range: {self.label} has layers 0..{self.cfg.n_layers - 1}"
            )
        try:
            self._hf_source(name)
        except KeyError:
            raise InvalidInputError(f"no weight named '{name}'{suggest(name, self.names())}") from None

    def has(self, name: str) -> bool:
        """Whether ``name`` can be loaded, without loading it."""
        self._check_name(name)
        if name in self._overrides or name in self._cache:
            return True
        hf = self._hf_source(name)
        return hf is None or self.source.has(hf)

    # ---- loading -----------------------------------------------------------------------
    def _read(self, hf: str, needed_for: str | None) -> torch.Tensor:
        if hf not in self._raw:
            self._raw[hf] = self.source.get(hf, needed_for)
        return self._raw[hf]

    def get(self, name: str, needed_for: str | None = None) -> torch.Tensor:
        """The tensor called ``name`` (TransformerLens name), loading it on first use."""
        if name in self._overrides:
            return self._overrides[name]
        if name in self._cache:
            return self._cache[name]
        self._check_name(name)
        t = self._load(name, needed_for or name)
        self._cache[name] = t
        return t

    __getitem__ = get

    def _load(self, name: str, needed_for: str) -> torch.Tensor:
        cfg = self.cfg
        hf = self._hf_source(name)
        if hf is None:  # GPT-2 has no unembedding bias
            return torch.zeros(cfg.d_vocab)
        raw = self._read(hf, needed_for)
        rest = name.split(".", 2)[-1] if name.startswith("blocks.") else name
        if rest[:7] in ("attn.W_", "attn.b_") and rest[7:] in _ATTN_PARTS:
            i = _ATTN_PARTS[rest[7:]]
            d, h, dh = cfg.d_model, cfg.n_heads, cfg.d_head
            if rest[5] == "W":  # Conv1D layout [d_model, 3 * d_model]
                return raw[:, i * d:(i + 1) * d].reshape(d, h, dh).permute(1, 0, 2).contiguous()
            return raw[i * d:(i + 1) * d].reshape(h, dh).contiguous()
        if rest == "attn.W_O":
            return raw.reshape(cfg.n_heads, cfg.d_head, cfg.d_model)
        if name == "unembed.W_U":
            return raw.T
        return raw

    def _stack(self, key: str) -> torch.Tensor:
        return torch.stack([self.get(f"blocks.{l}.{key}") for l in range(self.cfg.n_layers)])

    # Stacked views, as HookedTransformer exposes them.
    W_E = property(lambda self: self.get("embed.W_E"))
    W_pos = property(lambda self: self.get("pos_embed.W_pos"))
    W_U = property(lambda self: self.get("unembed.W_U"))
    b_U = property(lambda self: self.get("unembed.b_U"))
    W_Q = property(lambda self: self._stack("attn.W_Q"))
    W_K = property(lambda self: self._stack("attn.W_K"))
    W_V = property(lambda self: self._stack("attn.W_V"))
    W_O = property(lambda self: self._stack("attn.W_O"))
    b_Q = property(lambda self: self._stack("attn.b_Q"))
    b_K = property(lambda self: self._stack("attn.b_K"))
    b_V = property(lambda self: self._stack("attn.b_V"))
    b_O = property(lambda self: self._stack("attn.b_O"))
    W_in = property(lambda self: self._stack("mlp.W_in"))
    b_in = property(lambda self: self._stack("mlp.b_in"))
    W_out = property(lambda self: self._stack("mlp.W_out"))
    b_out = property(lambda self: self._stack("mlp.b_out"))

    def available(self, names: Iterable[str] | None = None) -> list[str]:
        return [n for n in (names or self.names()) if self.has(n)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every available tensor under TransformerLens names (loads them all)."""
        return {n: self.get(n) for n in self.names() if self.has(n)}

    # ---- processing support --------------------------------------------------------------
    def replace(self, updates: dict[str, torch.Tensor], step: str) -> Weights:
        """A new Weights with ``updates`` applied and ``step`` appended to ``processing``."""
        new = Weights(self.source, {**self._overrides, **updates}, self.processing + (step,))
        new._cache = dict(self._cache)
        new._raw = self._raw  # raw reads are immutable; share them
        return new

    def to_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Unprocessed weights back in Hugging Face names (for saving a checkpoint)."""
        cfg = self.cfg
        sd = {"wte.weight": self.W_E, "wpe.weight": self.W_pos,
              "ln_f.weight": self.get("ln_final.w"), "ln_f.bias": self.get("ln_final.b")}
        for l in range(cfg.n_layers):
            g = lambda k: self.get(f"blocks.{l}.{k}")  # noqa: E731
            qkv_w = torch.cat([g(f"attn.W_{x}").permute(1, 0, 2).reshape(cfg.d_model, -1) for x in "QKV"], dim=1)
            qkv_b = torch.cat([g(f"attn.b_{x}").reshape(-1) for x in "QKV"])
            sd.update({
                f"h.{l}.ln_1.weight": g("ln1.w"), f"h.{l}.ln_1.bias": g("ln1.b"),
                f"h.{l}.ln_2.weight": g("ln2.w"), f"h.{l}.ln_2.bias": g("ln2.b"),
                f"h.{l}.attn.c_attn.weight": qkv_w, f"h.{l}.attn.c_attn.bias": qkv_b,
                f"h.{l}.attn.c_proj.weight": g("attn.W_O").reshape(cfg.d_model, cfg.d_model),
                f"h.{l}.attn.c_proj.bias": g("attn.b_O"),
                f"h.{l}.mlp.c_fc.weight": g("mlp.W_in"), f"h.{l}.mlp.c_fc.bias": g("mlp.b_in"),
                f"h.{l}.mlp.c_proj.weight": g("mlp.W_out"), f"h.{l}.mlp.c_proj.bias": g("mlp.b_out"),
            })
        return {k: v.contiguous() for k, v in sd.items()}

    def __repr__(self) -> str:
        proc = ", ".join(self.processing) or "none"
        return f"Weights({self.label!r}, {self.cfg.n_layers}L x {self.cfg.n_heads}H, d_model={self.cfg.d_model}, processing={proc})"


WeightsFn = Callable[[Weights], Weights]


def load_weights(spec: str, revision: str | None = None) -> Weights:
    """Open a model by name, hub id or directory and return its lazy :class:`Weights`."""
    from .registry import open_checkpoint

    return Weights.from_checkpoint(open_checkpoint(spec, revision))


def require(weights: Weights, names: Iterable[str], needed_for: str) -> None:
    """Raise MissingTensorError for the first of ``names`` the checkpoint lacks."""
    for n in names:
        if not weights.has(n):
            hf = weights._hf_source(n)
            raise MissingTensorError(hf or n, needed_for, weights.label)
