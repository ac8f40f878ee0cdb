"""Model weights under TransformerLens names and shapes, loaded lazily per tensor.

Names follow TransformerLens's state dict: ``embed.W_E [d_vocab, d_model]``,
``pos_embed.W_pos [n_ctx, d_model]``, ``blocks.{l}.attn.W_Q [n_heads, d_model, d_head]``,
``blocks.{l}.attn.W_O [n_heads, d_head, d_model]``, ``blocks.{l}.mlp.W_in [d_model, d_mlp]``
(and ``mlp.W_gate`` for gated MLPs),
``blocks.{l}.ln1.w``, ``ln_final.w``, ``unembed.W_U [d_model, d_vocab]`` and so on. Stacked
views over layers (``weights.W_Q`` is ``[n_layers, n_heads, d_model, d_head]``) mirror
``HookedTransformer``'s properties. Every family has the same names: ``pos_embed.W_pos`` exists
only for learned positions (row p is position p, whatever offset the family stores it at);
biases and LayerNorm biases a family lacks read as zeros; W_K / W_V / b_K / b_V of
grouped-query models are expanded over the query heads sharing them.

>>> from poslens.models import load_weights
>>> w = load_weights("../shared/data/gpt2-small-partial")   # doctest: +SKIP
>>> w.W_pos.shape                                           # reads wpe.weight only  # doctest: +SKIP
torch.Size([1024, 768])
>>> w.has("embed.W_E")                                      # doctest: +SKIP
False
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

import torch

from ..errors import AbsentTensorError, InvalidInputError, MissingTensorError, UnsupportedArchitectureError, suggest
from .checkpoint import Checkpoint, StateDictCheckpoint
from .config import ModelConfig
from .families import family_of
from .families.gpt2 import to_hf_state_dict as gpt2_state_dict

_LAYER = re.compile(r"^blocks\.(\d+)\.(.+)$")


class Deferred:
    """A tensor computed on first use and kept: how processing steps hand over their results, so
    folding every LayerNorm of a model reads and computes only the tensors an analysis then asks for.
    Shared by the Weights derived from one another, so each is computed once.
    """

    __slots__ = ("fn", "value")

    def __init__(self, fn: Callable[[], torch.Tensor]):
        self.fn, self.value = fn, None

    def __call__(self) -> torch.Tensor:
        if self.fn is not None:
            self.value, self.fn = self.fn(), None
        return self.value


class Weights:
    """Lazily loaded, optionally processed weights of any supported family.

    The family adapter (:mod:`poslens.models.families`) says which stored tensors each
    TransformerLens name is made of. ``processing`` records, in order, every processing
    step applied (see :mod:`poslens.models.processing`); results copy it so a number always
    says what weights it came from.
    """

    def __init__(
        self,
        source: Checkpoint,
        overrides: dict[str, torch.Tensor | Deferred] | None = None,
        processing: tuple[str, ...] = (),
    ):
        self.source = source
        self.cfg: ModelConfig = source.config
        self.family = family_of(self.cfg)
        self._map = self.family.tensors(self.cfg)
        self._overrides: dict[str, torch.Tensor | Deferred] = dict(overrides or {})
        self._cache: dict[str, torch.Tensor] = {}
        self._raw: dict[str, torch.Tensor] = {}
        self.processing = tuple(processing)
        self._label: str | None = None  # set by a step that changes what the model is (randomize)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> Weights:
        return cls(ckpt)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], config: ModelConfig, label="<state dict>") -> Weights:
        """From a state dict in Hugging Face names (any supported family; ``transformer.``
        prefix optional) or TransformerLens names (``embed.W_E`` ...)."""
        if any(k.startswith(("embed.", "blocks.", "pos_embed.")) for k in state_dict):
            empty = StateDictCheckpoint.from_state_dict({}, config, label)
            return cls(empty, overrides={k: v.detach().to("cpu", torch.float32) for k, v in state_dict.items()})
        return cls(StateDictCheckpoint.from_state_dict(state_dict, config, label))

    @classmethod
    def from_hf_model(cls, model) -> Weights:
        """From an in-memory ``transformers`` model of a supported family (``GPT2LMHeadModel``,
        ``LlamaForCausalLM``, ...)."""
        if not (hasattr(getattr(model, "config", None), "to_dict") and callable(getattr(model, "state_dict", None))):
            raise InvalidInputError(f"from_hf_model takes a loaded transformers model (with .config and .state_dict()); "
                                    f"got {type(model).__name__}. For a name, hub id or directory use load_weights(...)")
        config = ModelConfig.from_hf_dict(model.config.to_dict(), source=type(model).__name__)
        return cls.from_state_dict(model.state_dict(), config, label=getattr(model, "name_or_path", "") or "<hf model>")

    @property
    def label(self) -> str:
        """The model's name in results; a processing step may extend it (``tiny (random weights, seed 0)``)."""
        return self._label or self.source.label

    # ---- names -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._map)

    def _stored(self, hf: str) -> str:
        return self.family.stored(hf, self.source.has)

    def stored_name(self, name: str) -> str | None:
        """The stored tensor a TL name is read from (its first, when several; None for derived zeros);
        KeyError for a name this family has no tensor for.

        >>> load_weights("tiny").stored_name("pos_embed.W_pos")
        'wpe.weight'
        """
        src = self._map.get(name)
        if src is None:
            raise KeyError(name)
        return self._stored(src.hf[0]) if src.hf else None

    def _check_name(self, name: str) -> None:
        m = _LAYER.match(name)
        if m and int(m.group(1)) >= self.cfg.n_layers:
            raise InvalidInputError(
                f"layer {m.group(1)} is out of range: {self.label} has layers 0..{self.cfg.n_layers - 1}"
            )
        try:
            self.stored_name(name)
        except KeyError:
            raise InvalidInputError(f"no weight named '{name}'{suggest(name, self.names())}") from None

    def _other_family(self, name: str) -> bool:
        """A name other families have and this one lacks (a learned W_pos in a rotary model, a gate)."""
        return name not in self._map and name not in self._overrides and (
            name == "pos_embed.W_pos" or bool(re.match(r"^blocks\.\d+\.mlp\.[Wb]_gate$", name)))

    def has(self, name: str) -> bool:
        """Whether ``name`` can be loaded, without loading it (False for a tensor this family lacks,
        e.g. ``pos_embed.W_pos`` of a rotary model)."""
        if self._other_family(name):
            return False
        self._check_name(name)
        if name in self._overrides or name in self._cache:
            return True
        return all(self.source.has(self._stored(h)) for h in self._map[name].hf)

    # ---- loading -----------------------------------------------------------------------
    def _read(self, hf: str, needed_for: str | None) -> torch.Tensor:
        if hf not in self._raw:
            self._raw[hf] = self.source.get(hf, needed_for)
        return self._raw[hf]

    def get(self, name: str, needed_for: str | None = None) -> torch.Tensor:
        """The tensor called ``name`` (TransformerLens name), loading it on first use."""
        if not isinstance(name, str):
            raise InvalidInputError(f"a weight is named by a string such as 'blocks.0.attn.W_Q'; got {name!r}")
        if name in self._overrides:
            t = self._overrides[name]
            return t() if isinstance(t, Deferred) else t
        if name in self._cache:
            return self._cache[name]
        if self._other_family(name):
            what = "rotary positions, no learned position table" if "pos" in name else "no gated MLP"
            raise AbsentTensorError(name, needed_for, f"{self.label} (a {self.cfg.model_type} model)", what)
        self._check_name(name)
        t = self._load(name, needed_for or name)
        self._cache[name] = t
        return t

    __getitem__ = get

    def _load(self, name: str, needed_for: str) -> torch.Tensor:
        src = self._map[name]
        return src.fn(*(self._read(self._stored(h), needed_for) for h in src.hf))

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
    W_gate = property(lambda self: self._stack("mlp.W_gate"))
    W_in = property(lambda self: self._stack("mlp.W_in"))
    b_in = property(lambda self: self._stack("mlp.b_in"))
    W_out = property(lambda self: self._stack("mlp.W_out"))
    b_out = property(lambda self: self._stack("mlp.b_out"))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every available tensor under TransformerLens names (loads them all)."""
        return {n: self.get(n) for n in self.names() if self.has(n)}

    # ---- processing support --------------------------------------------------------------
    def replace(self, updates: dict[str, torch.Tensor | Deferred], step: str) -> Weights:
        """A new Weights with ``updates`` applied (tensors, or :class:`Deferred` ones computed when
        first read) and ``step`` appended to ``processing``."""
        new = Weights(self.source, {**self._overrides, **updates}, self.processing + (step,))
        new._cache = dict(self._cache)
        new._raw = self._raw  # raw reads are immutable; share them
        new._label = self._label
        return new

    def to_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Unprocessed GPT-2 weights back in Hugging Face names (for saving a checkpoint)."""
        if self.cfg.family != "gpt2":
            raise UnsupportedArchitectureError(f"saving is written for GPT-2 checkpoints; {self.label} is {self.cfg.model_type}")
        return gpt2_state_dict(self.get, self.cfg)

    def __repr__(self) -> str:
        proc = ", ".join(self.processing) or "none"
        return f"Weights({self.label!r}, {self.cfg.n_layers}L x {self.cfg.n_heads}H, d_model={self.cfg.d_model}, processing={proc})"


WeightsFn = Callable[[Weights], Weights]


_NULL = re.compile(r"^random(?:=(\d+))?:(.+)$")


def null_spec(spec: str) -> tuple[str, int | None]:
    """``random:SPEC`` or ``random=SEED:SPEC`` (the model's null: :func:`~poslens.models.processing.randomize`)
    -> ``(SPEC, seed)``; any other spec -> ``(spec, None)``.

    >>> null_spec("random:tiny"), null_spec("random=3:gpt2"), null_spec("tiny")
    (('tiny', 0), ('gpt2', 3), ('tiny', None))
    """
    m = _NULL.match(str(spec))
    if m is None and re.match(r"^random=[^:]*:", str(spec)):
        raise InvalidInputError(f"'{spec}': the null model's seed is a whole number >= 0, as in random=3:tiny")
    if m and _NULL.match(m.group(2)):
        raise InvalidInputError(f"'{spec}' is a null model of a null model; one random: is enough, as in random:tiny")
    return (m.group(2), int(m.group(1) or 0)) if m else (str(spec), None)


def load_weights(spec: str | os.PathLike, revision: str | None = None) -> Weights:
    """Open a model by name, hub id or directory and return its lazy :class:`Weights`;
    ``random:SPEC`` (``random=SEED:SPEC``) gives that model with every tensor redrawn at its own
    mean and std, a null model to measure a finding against."""
    from .registry import open_checkpoint

    if not isinstance(spec, (str, os.PathLike)):  # the registry would call a Weights an unknown model's name
        loaded = " (Weights are loaded already: pass them on as they are)" if isinstance(spec, Weights) else ""
        raise InvalidInputError(f"load_weights takes a model name, hub id or checkpoint directory; "
                                f"got {type(spec).__name__}{loaded}")
    base, seed = null_spec(os.fspath(spec))
    w = Weights.from_checkpoint(open_checkpoint(base, revision))
    if seed is None:
        return w
    from .processing import randomize

    return randomize(w, seed)


def as_weights(model, what: str) -> Weights:
    """``model`` if it is Weights, else the model it names (a name, hub id, ``NAME@REV`` or a
    checkpoint directory, as a string or a path), so every analysis takes what ``load_weights`` takes.

    >>> as_weights("tiny", "helix").cfg.n_layers
    3
    >>> as_weights(3, "helix")
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: helix takes the model's Weights, a model name or a checkpoint directory; got int
    """
    if isinstance(model, Weights):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_weights(os.fspath(model))
    raise InvalidInputError(f"{what} takes the model's Weights, a model name or a checkpoint directory; "
                            f"got {type(model).__name__}")


def require(weights: Weights, names: Iterable[str], needed_for: str) -> None:
    """Raise MissingTensorError for the first of ``names`` the checkpoint lacks (a tensor its
    family does not have at all, such as a rotary model's W_pos, says so)."""
    for n in names:
        if not weights.has(n):
            if n not in weights._map:
                weights.get(n, needed_for)  # raises, naming what the family has instead
            hf = weights.stored_name(n)
            raise MissingTensorError(hf or n, needed_for, weights.label)


def forward_tensors(weights: Weights, n_layers: int | None = None, unembed: bool = False) -> list[str]:
    """The tensors a token forward pass through the first ``n_layers`` blocks reads, in this
    family's names (W_pos only for learned positions, a gate only for gated MLPs, ln_final
    only where the model has one); ``unembed`` adds the final norm and W_U.

    >>> require(w, forward_tensors(w, 3), "a probe after layer 2")   # doctest: +SKIP
    """
    L = weights.cfg.n_layers if n_layers is None else min(int(n_layers), weights.cfg.n_layers)
    out = []
    for n in weights.names():
        m = _LAYER.match(n)
        if m:
            if int(m.group(1)) < L:
                out.append(n)
        elif n.startswith(("embed.", "pos_embed.")) or (unembed and n.startswith(("ln_final.", "unembed."))):
            out.append(n)
    return out

