"""A hooked forward pass over :class:`~poslens.models.weights.Weights` of any family, built
on the one block in :mod:`poslens.models.block`.

``Runner.run`` returns only the activations asked for, under TransformerLens hook names,
and stops as soon as the last of them (or of the edits) has been computed: asking for
``blocks.3.hook_resid_post`` runs four layers and never touches the unembedding; asking
for ``blocks.0.attn.hook_pattern`` does not even run layer 0's MLP. Attention patterns
are materialised only where asked for; elsewhere attention runs through
``scaled_dot_product_attention``.

Editing hooks replace what passes through a hook point: ``edits={name: fn}`` where
``fn(activation, hook)`` returns the replacement (or None to keep it, after editing in
place: the edit is given its own copy, so writing in place changes what flows on and nothing
else, neither the weights nor an activation kept at an earlier hook); ``hook.name`` and
``hook.batch`` (the slice of the input batch being run) say where it is. Ablation and
activation patching stand on this.

>>> from poslens.models import load_weights
>>> from poslens.models.tokenizer import Tokenizer
>>> w = load_weights("tiny")                       # 3 layers of 4 heads, n_ctx 256
>>> runner, tok = Runner(w), Tokenizer.for_checkpoint(w.source)
>>> tokens = torch.tensor([tok.encode("And God said, Let there be light", prepend_bos=True)])
>>> acts = runner.run(tokens, hooks=["blocks.0.attn.hook_pattern"])
>>> acts["blocks.0.attn.hook_pattern"].shape   # [batch, head, query, key]
torch.Size([1, 4, 11, 11])
>>> # positional inputs alone (no W_E needed):
>>> acts = runner.run(embed=torch.zeros(1, 256, w.cfg.d_model), hooks=["blocks.0.attn.hook_pattern"])
>>> # zero-ablate head 0.3 (in place: the edit returns None) and read the logits:
>>> def zero_head(z, hook): z[:, :, 3] = 0
>>> runner.run(tokens, edits={"blocks.0.attn.hook_z": zero_head}, logits=True).logits.shape
torch.Size([1, 11, 1024])

Every family has the same hook names: ``hook_embed``; ``hook_pos_embed`` only where a
learned table exists; per block ``hook_resid_pre|mid|post``, ``ln1|ln2.hook_scale|
hook_normalized``, ``attn.hook_q|hook_k|hook_v`` ([batch, pos, head, d_head], before rotary;
keys and values of grouped-query models are expanded to one per query head),
``attn.hook_rot_q|hook_rot_k`` (after rotary, rotary models only), ``attn.hook_attn_scores|
hook_pattern`` ([batch, head, query, key]), ``attn.hook_z``, ``attn.hook_result`` ([batch, pos,
head, d_model]), ``hook_attn_out``, ``mlp.hook_pre`` (the gate, for gated MLPs),
``mlp.hook_pre_linear`` (gated MLPs), ``mlp.hook_post``, ``hook_mlp_out``; then
``ln_final.hook_scale|hook_normalized`` and ``logits``. In GPT-NeoX's parallel blocks
``hook_resid_mid`` is resid_pre + attn_out, which the MLP does not read.

**A shared prompt prefix, computed once.** ``prefix = runner.prefix(tokens)`` runs a prefix
([pos] or [batch, pos] ids) through every layer and keeps its keys and values;
``runner.run(suffix_tokens, prefix=prefix, hooks=...)`` then runs only the suffix, at
positions ``len(prefix) ..``, attending to the cached keys and values, and gives the same
activations on the suffix positions as running prefix + suffix in full (to float
rounding). Hooks and edits see suffix positions only (patterns are [batch, head, suffix,
prefix + suffix]); a one-row prefix serves any batch of suffixes, or give one prefix row per
suffix row. The prefix is computed without edits.

>>> prefix = runner.prefix(tok.encode("The words are:", prepend_bos=True))
>>> suffix_batch = torch.tensor([tok.encode(" light"), tok.encode(" water")])
>>> acts = runner.run(suffix_batch, prefix=prefix, hooks=["blocks.2.hook_resid_post"])
>>> acts["blocks.2.hook_resid_post"].shape     # suffix positions only
torch.Size([2, 2, 96])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InvalidInputError, UnknownHookError, suggest
from .block import act_fn, block_forward, layer_hook_names, norm, rotary_tables
from .config import ModelConfig
from .weights import Weights

# GPT-2's hook points per layer (other families: block.layer_hook_names).
LAYER_HOOKS = (
    "hook_resid_pre",
    "ln1.hook_scale", "ln1.hook_normalized",
    "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern",
    "attn.hook_z", "attn.hook_result",
    "hook_attn_out", "hook_resid_mid",
    "ln2.hook_scale", "ln2.hook_normalized",
    "mlp.hook_pre", "mlp.hook_post",
    "hook_mlp_out", "hook_resid_post",
)
FINAL_HOOKS = ("ln_final.hook_scale", "ln_final.hook_normalized", "logits")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def resid_hook(point: int, *, n_layers: int) -> str:
    """The hook holding residual point ``point``: 0 the embeddings, L entering block L, ``n_layers``
    after the last block (``n_layers`` by keyword: two bare ints in the wrong order would name another hook).

    >>> resid_hook(4, n_layers=12), resid_hook(12, n_layers=12)
    ('blocks.4.hook_resid_pre', 'blocks.11.hook_resid_post')
    """
    return f"blocks.{n_layers - 1}.hook_resid_post" if point == n_layers else f"blocks.{point}.hook_resid_pre"


def hook_names(model: int | ModelConfig) -> list[str]:
    """Every hook point, in the order the forward pass reaches them (an int: a GPT-2 of that many layers)."""
    if isinstance(model, int):
        n_layers, learned, layer = model, True, LAYER_HOOKS
    else:
        n_layers, learned, layer = model.n_layers, model.positional == "learned", layer_hook_names(model)
    names = ["hook_embed"] + (["hook_pos_embed"] if learned else [])
    names += [f"blocks.{l}.{h}" for l in range(n_layers) for h in layer]
    # Models without a final norm still have ln_final.hook_normalized: what the unembedding reads.
    return names + list(FINAL_HOOKS)


@dataclass(frozen=True)
class HookContext:
    name: str
    layer: int | None
    batch: slice


class _Stop(Exception):
    """Raised once every requested activation exists: the rest of the model is not run."""


class Activations(dict):
    """Hook name → tensor (on the CPU, float32 unless the run dtype was float64)."""

    @property
    def logits(self) -> torch.Tensor:
        return self["logits"]

    def stack(self, names: Sequence[str]) -> torch.Tensor:
        return torch.stack([self[n] for n in names])


@dataclass(frozen=True)
class Prefix:
    """A prompt prefix's keys and values in every layer (see :meth:`Runner.prefix`)."""

    tokens: torch.Tensor  # [batch, pos]
    kv: tuple  # per layer (k, v) [batch, pos, n_kv, d_head], keys rotated
    owner: int  # id of the Runner that computed it
    logits: torch.Tensor | None = None  # [batch, d_vocab] at the last position, when asked for

    def __len__(self) -> int:
        return self.tokens.shape[1]


class _Hooks:
    """The block's hooks for layer ``layer``: full names, edits, the early stop."""

    __slots__ = ("point", "wanted", "layer", "pre")

    def __init__(self, point, wanted, layer: int):
        self.point, self.wanted, self.layer, self.pre = point, wanted, layer, f"blocks.{layer}."

    def __call__(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return self.point(self.pre + name, t, self.layer)

    def needs(self, name: str) -> bool:
        return self.wanted(self.pre + name)


class _LayerParams:
    """One layer's tensors in the block's layout, prepared on first use (so a checkpoint
    without MLP matrices still runs attention)."""

    def __init__(self, runner: Runner, layer: int):
        self._runner, self._layer = runner, layer

    def __getattr__(self, name: str) -> torch.Tensor:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._runner._layer_tensor(self._layer, name)
        setattr(self, name, value)
        return value


_BLOCK_NAMES = {"ln1_w": "ln1.w", "ln1_b": "ln1.b", "ln2_w": "ln2.w", "ln2_b": "ln2.b", "b_O": "attn.b_O",
                "W_in": "mlp.W_in", "b_in": "mlp.b_in", "W_gate": "mlp.W_gate", "b_gate": "mlp.b_gate",
                "W_out": "mlp.W_out", "b_out": "mlp.b_out"}


_WARNED: set[torch.dtype] = set()


def _as_tensor(x, what: str) -> torch.Tensor:
    """``x`` (a tensor, array or nested list) as a tensor, or one InvalidInputError saying why not."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{what} must be a tensor (or nested lists of numbers of equal length): {exc}") from None


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        return set(Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split())
    except OSError:
        return None


def _warn_if_emulated(dtype: torch.dtype) -> None:
    """Say once when this CPU has no instructions for ``dtype``'s matmuls: torch then emulates
    them, and a bfloat16 forward measured 48-145x slower than float32 on AVX2-only CPUs."""
    import warnings

    flags = _cpu_flags()
    if flags is None:
        return  # not Linux: we cannot tell, and say nothing
    native = {"avx512_bf16", "amx_bf16"} if dtype == torch.bfloat16 else {"avx512_fp16", "amx_fp16"}
    if dtype not in _WARNED and not flags & native:
        _WARNED.add(dtype)
        name = str(dtype).removeprefix("torch.")
        warnings.warn(f"this CPU has no {name} matmul instructions ({' or '.join(sorted(native))}), so {name} runs "
                      "emulated, tens of times slower than float32; use float32 here (--dtype float32)",
                      stacklevel=3)


def check_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` as a torch.device if torch can compute on it here, else one InvalidInputError
    (torch's own errors come at the first tensor moved, as an AssertionError or RuntimeError).
    ``what`` names the setting in the message: ``device=`` from Python, ``--device`` on the command line.

    >>> check_device("cpu")
    device(type='cpu')
    """
    flag = what.startswith("--")
    fix = (lambda d: f"use --device {d}") if flag else (lambda d: f"use device='{d}'")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"{what} {str(device)!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InvalidInputError(f"{what} {str(device)!r}: this torch has no usable CUDA device; {fix('cpu')}")
        if dev.index is not None and dev.index >= n:
            raise InvalidInputError(f"{what} {str(device)!r}: only {n} CUDA device(s) here (cuda:0 ..); choose one of them")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidInputError(f"{what} {str(device)!r}: MPS is not available here; {fix('cpu')}")
    elif dev.type != "cpu":
        raise InvalidInputError(f"{what} {str(device)!r}: the runner computes on cpu, cuda or mps")
    return dev


class Runner:
    """Forward passes over a model's :class:`Weights`, on ``device`` in ``dtype``.

    Layer tensors are loaded and converted on first use, so a run that stops at layer 3
    reads only layers 0-3, and a checkpoint missing the MLP matrices still runs attention.
    """

    def __init__(self, weights: Weights, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
        if not isinstance(weights, Weights):
            raise InvalidInputError(f"Runner needs the model's Weights (poslens.load_weights(...)); got {type(weights).__name__}")
        self.weights = weights
        self.cfg = weights.cfg
        self.device = check_device(device)
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise InvalidInputError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
            dtype = DTYPES[dtype]
        if dtype not in DTYPES.values():
            raise InvalidInputError(f"the runner computes in a float dtype, one of {', '.join(DTYPES)}; got {dtype}")
        self.dtype = dtype
        if dtype in (torch.bfloat16, torch.float16) and self.device.type == "cpu":
            _warn_if_emulated(dtype)
        self._prepared: dict[str, torch.Tensor] = {}
        self._layers = [_LayerParams(self, l) for l in range(self.cfg.n_layers)]
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None
        self._hook_names = hook_names(self.cfg)
        self._hook_index = {n: i for i, n in enumerate(self._hook_names)}
        self._act = act_fn(self.cfg.act_fn)

    # ---- weights, prepared lazily in the run dtype ---------------------------------------
    def _p(self, key: str, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        t = self._prepared.get(key)
        if t is None:
            t = build().to(self.device, self.dtype).contiguous()
            self._prepared[key] = t
        return t

    def _w(self, name: str, why: str) -> torch.Tensor:
        return self._p(name, lambda: self.weights.get(name, needed_for=why))

    def _qkv(self, l: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Fused [W_Q | W_K | W_V] with keys/values once per key/value head when the weights'
        per-query-head copies are still identical (grouped-query attention), else per query head."""
        if f"{l}.W_qkv" not in self._prepared:
            why = f"the runner's attention in layer {l}"
            g = lambda k: self.weights.get(f"blocks.{l}.attn.{k}", needed_for=why)  # noqa: E731
            cfg = self.cfg
            d, H, G = cfg.d_model, cfg.n_heads, cfg.n_key_value_heads
            Ws, bs = [g(f"W_{x}") for x in "QKV"], [g(f"b_{x}") for x in "QKV"]
            if G != H:
                grp = H // G
                shared = all(torch.equal(t.view(G, grp, *t.shape[1:]), t[::grp, None].expand(G, grp, *t.shape[1:]))
                             for t in (*Ws[1:], *bs[1:]))
                if shared:
                    Ws[1:], bs[1:] = [t[::grp] for t in Ws[1:]], [t[::grp] for t in bs[1:]]
                else:
                    G = H
            self._p(f"{l}.W_qkv", lambda: torch.cat([W.permute(1, 0, 2).reshape(d, -1) for W in Ws], 1))
            self._p(f"{l}.b_qkv", lambda: torch.cat([b.reshape(-1) for b in bs]))
            self._prepared[f"{l}.n_kv"] = G
        return self._prepared[f"{l}.W_qkv"], self._prepared[f"{l}.b_qkv"], self._prepared[f"{l}.n_kv"]

    def _layer_tensor(self, l: int, name: str):
        pre = f"blocks.{l}."
        if name in ("W_qkv", "b_qkv", "n_kv"):
            return self._qkv(l)[("W_qkv", "b_qkv", "n_kv").index(name)]
        if name == "W_O":
            why = f"the runner's attention in layer {l}"
            return self._p(f"{l}.W_O", lambda: self.weights.get(pre + "attn.W_O", needed_for=why).reshape(-1, self.cfg.d_model))
        if name in _BLOCK_NAMES:
            tl = _BLOCK_NAMES[name]
            why = {"ln": "a LayerNorm", "at": f"the runner's attention in layer {l}"}.get(tl[:2], f"the runner's MLP in layer {l}")
            return self._w(pre + tl, why)
        raise AttributeError(name)

    def _rotary(self, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope is None or self._rope[0].shape[0] < start + n:
            size = min(self.cfg.n_ctx, max(start + n, 256))
            pos = torch.arange(size, device=self.device)
            self._rope = rotary_tables(self.cfg.rotary_dim, self.cfg.rotary_base, pos, self.dtype)
        cos, sin = self._rope
        return cos[start:start + n], sin[start:start + n]

    # ---- public API ----------------------------------------------------------------------
    def prepared(self, name: str, needed_for: str | None = None) -> torch.Tensor:
        """The weight ``name`` (TransformerLens name) on the runner's device and dtype, converted once and kept.

        ``needed_for`` is what a :class:`~poslens.errors.MissingTensorError` names as wanting it.

        >>> runner.prepared("blocks.0.attn.W_O", "my sweep").shape   # [n_heads, d_head, d_model]   # doctest: +SKIP
        """
        return self._w(name, needed_for)

    def layer(self, l: int) -> _LayerParams:
        """Layer ``l``'s tensors in the layout of :mod:`poslens.models.block` (prepared on first use).

        >>> from poslens.models.block import block_forward                         # doctest: +SKIP
        >>> resid, kv = block_forward(runner.cfg, 0, runner.layer(0), x)           # doctest: +SKIP
        """
        if not 0 <= l < self.cfg.n_layers:
            raise InvalidInputError(f"layer {l} is out of range: the model has layers 0..{self.cfg.n_layers - 1}")
        return self._layers[l]

    def qkv_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s fused query/key/value projection ``(W, b)``, as the runner's attention uses it.

        ``W [d_model, (n_heads + 2 * n_kv) * d_head]``: queries, keys, values, heads contiguous
        (``n_kv`` = ``runner.layer(l).n_kv``; n_heads unless the model groups its keys).

        >>> W, b = runner.qkv_weights(0)                                              # doctest: +SKIP
        """
        W, b, _ = self._qkv(layer)
        return W, b

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's activation function (``cfg.act_fn``) applied to ``x``, as in the runner's MLP.

        >>> runner.activation(torch.zeros(3))   # doctest: +SKIP
        tensor([0., 0., 0.])
        """
        return self._act(x)

    def attention_scale(self, layer: int) -> float:
        """The factor layer ``layer``'s attention scores are multiplied by (``cfg.attention_scale``)."""
        return self.cfg.attention_scale(layer)

    def rotary(self, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """cos, sin [n, rotary_dim] for positions ``start..start+n-1`` (None for learned positions)."""
        return self._rotary(start, n) if self.cfg.positional == "rotary" else None

    def hook_names(self) -> list[str]:
        return list(self._hook_names)

    def check_hook(self, name: str) -> None:
        if name not in self._hook_index:
            import re

            m = re.match(r"blocks\.(\d+)\.", name)
            if m and int(m.group(1)) >= self.cfg.n_layers:
                raise InvalidInputError(
                    f"layer {m.group(1)} in hook '{name}' is out of range: the model has layers 0..{self.cfg.n_layers - 1}"
                )
            raise UnknownHookError(f"no hook named '{name}'{suggest(name, self._hook_names)}")

    def prefix(self, tokens: torch.Tensor | Sequence, after: Prefix | None = None, logits: bool = False) -> Prefix:
        """Run a shared prompt prefix once and keep its keys and values for :meth:`run` (``prefix=``).

        ``after``: extend that prefix by ``tokens`` (its keys and values are reused); with
        ``logits``, the result also holds the next-token logits at its last position: greedy
        decoding is then one ``prefix([token], after=..., logits=True)`` per step.

        >>> prefix = runner.prefix([50256, 464, 2456, 389, 25])                      # doctest: +SKIP
        >>> runner.run(suffixes, prefix=prefix, hooks=["blocks.2.hook_resid_post"])   # doctest: +SKIP
        >>> longer = runner.prefix([262], after=prefix)                              # doctest: +SKIP
        """
        if after is not None and not isinstance(after, Prefix):
            raise InvalidInputError(f"after= takes a Prefix from runner.prefix(...); got {type(after).__name__}")
        start = 0 if after is None else len(after)
        x, _ = self._check_input(tokens, None, None, 0, start)
        if after is not None:
            if after.owner != id(self):
                raise InvalidInputError("this prefix was computed by another Runner; compute it with runner.prefix()")
            if after.tokens.shape[0] != x.shape[0]:
                raise InvalidInputError(f"the prefix has {after.tokens.shape[0]} rows and the tokens {x.shape[0]}")
        kv: list = []
        with torch.inference_mode():
            resid = self._embed(x, "tokens", start, lambda n, t, l=None: t)
            rope = self.rotary(start, x.shape[1])
            hooks = _Hooks(lambda n, t, l: t, lambda n: False, 0)
            for l in range(self.cfg.n_layers):
                hooks.layer, hooks.pre = l, f"blocks.{l}."
                past = None if after is None else after.kv[l]
                resid, (k, v) = block_forward(self.cfg, l, self._layers[l], resid, rope=rope,
                                              past=past, start=start, hooks=hooks)
                kv.append((k, v) if past is None else (torch.cat([past[0], k], 1), torch.cat([past[1], v], 1)))
            last = self._last_logits(resid[:, -1:]) if logits else None
        toks = x.cpu() if after is None else torch.cat([after.tokens, x.cpu()], 1)
        return Prefix(tokens=toks, kv=tuple(kv), owner=id(self), logits=last)

    def _last_logits(self, resid: torch.Tensor) -> torch.Tensor:
        """``[batch, d_vocab]`` logits of ``resid [batch, 1, d_model]`` (the final norm, then the unembedding)."""
        cfg = self.cfg
        h = resid
        if cfg.final_norm and cfg.normalization != "none":
            quiet = _Hooks(lambda n, t, l: t, lambda n: False, None)
            quiet.pre = ""
            h = norm(cfg, resid, self._w("ln_final.w", "a LayerNorm"), self._w("ln_final.b", "a LayerNorm"), quiet,
                     "ln_final")
        return torch.addmm(self._w("unembed.b_U", "logits"), h[:, -1], self._w("unembed.W_U", "logits"))

    def run(
        self,
        tokens: torch.Tensor | Sequence | None = None,
        *,
        embed: torch.Tensor | None = None,
        resid: torch.Tensor | None = None,
        start_at_layer: int = 0,
        hooks: Iterable[str] = (),
        edits: dict[str, Callable] | None = None,
        logits: bool = False,
        batch_size: int | None = None,
        progress: bool | None = None,
        prefix: Prefix | None = None,
    ) -> Activations:
        """Run the model and return the requested activations.

        Exactly one input: ``tokens`` [batch, pos] (ids), ``embed`` [batch, pos, d_model]
        (replaces the token embedding; learned positions are still added), or ``resid``
        [batch, pos, d_model] (the residual stream entering ``start_at_layer``). With
        ``prefix`` (:meth:`prefix`), the input is the suffix that follows it.
        """
        # one name, not its characters as hook names
        hooks = list(dict.fromkeys([hooks] if isinstance(hooks, str) else hooks or ()))
        edits = dict(edits or {})
        if logits and "logits" not in hooks:
            hooks.append("logits")
        for n in [*hooks, *edits]:
            self.check_hook(n)
        for n, fn in edits.items():
            if not callable(fn):
                raise InvalidInputError(f"the edit of {n} is a {type(fn).__name__}, not a function fn(activation, hook)")
        if not hooks and not edits:
            raise InvalidInputError("nothing to compute: ask for at least one hook or logits=True")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise InvalidInputError(f"batch_size is a number of rows >= 1 (None: all at once); got {batch_size!r}")
        if isinstance(start_at_layer, bool) or not isinstance(start_at_layer, int):
            raise InvalidInputError(f"start_at_layer is a layer number (an int); got {start_at_layer!r}")
        if 0 < start_at_layer < self.cfg.n_layers:
            early = [n for n in [*hooks, *edits] if self._hook_index[n] < self._hook_index[f"blocks.{start_at_layer}.hook_resid_pre"]]
            if early:
                raise InvalidInputError(f"{early[0]} comes before start_at_layer={start_at_layer}, so it is never computed")
        start = 0
        if prefix is not None:
            if not isinstance(prefix, Prefix):
                raise InvalidInputError(f"prefix= takes a Prefix from runner.prefix(tokens); got {type(prefix).__name__}")
            if prefix.owner != id(self):
                raise InvalidInputError("this prefix was computed by another Runner; compute it with runner.prefix()")
            start = len(prefix)
        x, kind = self._check_input(tokens, embed, resid, start_at_layer, start)
        if prefix is not None and prefix.tokens.shape[0] not in (1, x.shape[0]):
            raise InvalidInputError(
                f"the prefix has {prefix.tokens.shape[0]} rows and the suffix {x.shape[0]}; give one prefix row, or one per suffix row")
        wanted = set(hooks)
        last = max(self._hook_index[n] for n in [*hooks, *edits])
        n = x.shape[0]
        bs = batch_size or n
        chunks = [slice(i, min(i + bs, n)) for i in range(0, n, bs)]
        if progress is None:
            progress = len(chunks) > 4
        parts: list[dict[str, torch.Tensor]] = []
        it = chunks
        if progress:
            from ..progress import bar

            it = bar(chunks, desc="forward", unit="batch", leave=False)
        with torch.inference_mode():
            for sl in it:
                store: dict[str, torch.Tensor] = {}
                try:
                    self._forward(x[sl], kind, start_at_layer, wanted, edits, last, store, sl, prefix)
                except _Stop:
                    pass
                parts.append(store)
        out = Activations()
        for name in hooks:
            ts = [p[name] for p in parts]
            out[name] = ts[0] if len(ts) == 1 else torch.cat(ts, 0)
        return out

    # ---- internals ---------------------------------------------------------------------
    def _check_input(self, tokens, embed, resid, start_at_layer, start=0):
        cfg = self.cfg
        given = [t is not None for t in (tokens, embed, resid)]
        if sum(given) != 1:
            raise InvalidInputError("give exactly one of tokens, embed or resid")
        if not 0 <= start_at_layer < cfg.n_layers:
            raise InvalidInputError(f"start_at_layer {start_at_layer} is out of range 0..{cfg.n_layers - 1}")
        if start_at_layer and resid is None:
            raise InvalidInputError("start_at_layer needs resid= (the residual stream entering that layer)")
        if tokens is not None:
            t = _as_tensor(tokens, "tokens")
            if t.dim() == 1:
                t = t[None]
            if t.numel() == 0:
                raise InvalidInputError("tokens are empty")
            if t.dim() != 2 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise InvalidInputError(f"tokens must be integer ids of shape [batch, pos]; got {t.dtype} of shape {tuple(t.shape)}")
            if int(t.max()) >= cfg.d_vocab or int(t.min()) < 0:
                bad = int(t.max()) if int(t.max()) >= cfg.d_vocab else int(t.min())
                raise InvalidInputError(f"token id {bad} is outside the vocabulary 0..{cfg.d_vocab - 1}")
            # long: other integer dtypes do not index the embedding (uint8 would be read as a mask)
            x, kind = t.to(self.device, torch.long), "tokens"
        else:
            kind = "embed" if embed is not None else "resid"
            x = _as_tensor(embed if embed is not None else resid, kind)
            if x.dim() == 2:
                x = x[None]
            if x.dim() != 3 or x.shape[-1] != cfg.d_model:
                raise InvalidInputError(f"{kind} must have shape [batch, pos, {cfg.d_model}]; got {tuple(x.shape)}")
            if x.numel() == 0:
                raise InvalidInputError(f"{kind} is empty: shape {tuple(x.shape)}")
            if x.is_complex():
                raise InvalidInputError(f"{kind} must be real; got {x.dtype}")
            x = x.to(self.device, self.dtype)
        if start + x.shape[1] > cfg.n_ctx:
            what = f"{start} prefix + {x.shape[1]} positions" if start else f"sequence of {x.shape[1]} positions"
            raise InvalidInputError(f"{what} is longer than the model's context n_ctx={cfg.n_ctx}; shorten it")
        return x, kind

    def _embed(self, x, kind, start, point):
        if kind == "tokens":
            emb = self._w("embed.W_E", "the token embedding of the runner")[x]
        else:
            emb = x
        emb = point("hook_embed", emb)
        if self.cfg.positional != "learned":
            return emb
        p = x.shape[1]
        W_pos = self._w("pos_embed.W_pos", "the positional embedding of the runner")
        pos = point("hook_pos_embed", W_pos[start:start + p].expand(x.shape[0], p, self.cfg.d_model))
        return emb + pos

    def _forward(self, x, kind, start_layer, wanted, edits, last, store, sl, prefix):
        cfg = self.cfg
        idx = self._hook_index

        def point(name: str, t: torch.Tensor, layer: int | None = None) -> torch.Tensor:
            fn = edits.get(name)
            if fn is not None:
                # An edit may write in place, and what passes a hook can be shared: hook_pos_embed is a view of
                # W_pos (the caller's Weights), hook_resid_pre the tensor kept for the last hook_resid_post, a
                # first hook the caller's embed= or resid=. The edit gets its own copy.
                own = t.clone()
                r = fn(own, HookContext(name, layer, sl))
                t = own if r is None else t
                if r is not None:
                    if not isinstance(r, torch.Tensor):
                        raise InvalidInputError(f"edit of {name} returned a {type(r).__name__}; return a tensor of shape "
                                                f"{tuple(t.shape)}, or None after editing in place")
                    if r.shape != t.shape:
                        raise InvalidInputError(f"edit of {name} returned shape {tuple(r.shape)}, expected {tuple(t.shape)}")
                    t = r.to(t.dtype)
            if name in wanted:
                store[name] = t.detach().to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32)
            if idx[name] >= last:
                raise _Stop
            return t

        def needs(name: str) -> bool:
            return name in wanted or name in edits

        start = len(prefix) if prefix is not None else 0
        resid = x if kind == "resid" else self._embed(x, kind, start, point)
        rope = self.rotary(start, x.shape[1])
        for l in range(start_layer, cfg.n_layers):
            past = None
            if prefix is not None:
                k, v = prefix.kv[l]
                rows = slice(None) if k.shape[0] == 1 else sl
                past = (k[rows].expand(x.shape[0], *k.shape[1:]), v[rows].expand(x.shape[0], *v.shape[1:]))
            resid, _ = block_forward(cfg, l, self._layers[l], resid, rope=rope, past=past,
                                     start=start, hooks=_Hooks(point, needs, l))
        if cfg.final_norm and cfg.normalization != "none":
            fin = _Hooks(point, needs, 0)
            fin.pre = ""
            fin.layer = None
            h = norm(cfg, resid, self._w("ln_final.w", "a LayerNorm"), self._w("ln_final.b", "a LayerNorm"), fin,
                     "ln_final")
        else:  # no final norm: the hooks see a unit scale and the residual itself
            point("ln_final.hook_scale", torch.ones_like(resid[..., :1]))
            h = point("ln_final.hook_normalized", resid)
        W_U = self._w("unembed.W_U", "logits")
        b_U = self._w("unembed.b_U", "logits")
        # one fused GEMM with the bias: a separate add is another pass over [batch, pos, vocab]
        point("logits", torch.addmm(b_U, h.reshape(-1, h.shape[-1]), W_U).view(*h.shape[:-1], W_U.shape[-1]))
