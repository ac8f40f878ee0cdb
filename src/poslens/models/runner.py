"""A hooked GPT-2 forward pass written from :class:`~poslens.models.weights.Weights`.

``Runner.run`` returns only the activations asked for, under TransformerLens hook names,
and stops as soon as the last of them (or of the edits) has been computed: asking for
``blocks.3.hook_resid_post`` runs four layers and never touches the unembedding; asking
for ``blocks.0.attn.hook_pattern`` does not even run layer 0's MLP. Attention patterns
are materialised only where asked for; elsewhere attention runs through
``scaled_dot_product_attention``.

Editing hooks replace what passes through a hook point: ``edits={name: fn}`` where
``fn(activation, hook)`` returns the replacement (or None to keep it, after editing in
place); ``hook.name`` and ``hook.batch`` (the slice of the input batch being run) say
where it is. Ablation and activation patching stand on this.

>>> runner = Runner(load_weights("tiny"))                                  # doctest: +SKIP
>>> acts = runner.run(tokens, hooks=["blocks.0.attn.hook_pattern"])        # doctest: +SKIP
>>> acts["blocks.0.attn.hook_pattern"].shape   # [batch, head, query, key] # doctest: +SKIP
>>> # positional inputs alone (no W_E needed):
>>> acts = runner.run(embed=torch.zeros(1, 512, cfg.d_model), hooks=[...]) # doctest: +SKIP
>>> # zero-ablate head 0.5 and read the logits:
>>> def zero_head(z, hook): z[:, :, 5] = 0                                 # doctest: +SKIP
>>> runner.run(tokens, edits={"blocks.0.attn.hook_z": zero_head}, logits=True)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError, UnknownHookError, suggest
from .weights import Weights

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


def hook_names(n_layers: int) -> list[str]:
    """Every hook point, in the order the forward pass reaches them."""
    names = ["hook_embed", "hook_pos_embed"]
    for l in range(n_layers):
        names += [f"blocks.{l}.{h}" for h in LAYER_HOOKS]
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


def act_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu
    return F.relu


class Runner:
    """Forward passes over a model's :class:`Weights`, on ``device`` in ``dtype``.

    Layer tensors are loaded and converted on first use, so a run that stops at layer 3
    reads only layers 0-3, and a checkpoint missing the MLP matrices still runs attention.
    """

    def __init__(self, weights: Weights, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
        self.weights = weights
        self.cfg = weights.cfg
        self.device = torch.device(device)
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise InvalidInputError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
            dtype = DTYPES[dtype]
        self.dtype = dtype
        self._prepared: dict[str, torch.Tensor] = {}
        self._hook_names = hook_names(self.cfg.n_layers)
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

    def _qkv(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        why = f"the runner's attention in layer {l}"
        g = lambda k: self.weights.get(f"blocks.{l}.attn.{k}", needed_for=why)  # noqa: E731
        d = self.cfg.d_model
        W = self._p(f"{l}.W_qkv", lambda: torch.cat([g(f"W_{x}").permute(1, 0, 2).reshape(d, -1) for x in "QKV"], 1))
        b = self._p(f"{l}.b_qkv", lambda: torch.cat([g(f"b_{x}").reshape(-1) for x in "QKV"]))
        return W, b

    # ---- public API ----------------------------------------------------------------------
    def prepared(self, name: str, needed_for: str | None = None) -> torch.Tensor:
        """The weight ``name`` (TransformerLens name) on the runner's device and dtype, converted once and kept.

        ``needed_for`` is what a :class:`~poslens.errors.MissingTensorError` names as wanting it.
        Code that re-runs part of the forward pass (e.g. suffix-only patching) uses this to
        compute with exactly the runner's tensors.

        >>> runner.prepared("blocks.0.attn.W_O", "my sweep").shape   # [n_heads, d_head, d_model]   # doctest: +SKIP
        """
        return self._w(name, needed_for)

    def qkv_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s fused query/key/value projection ``(W, b)``, as the runner's attention uses it.

        ``W [d_model, 3 * n_heads * d_head]``, ``b [3 * n_heads * d_head]``: ``x @ W + b`` viewed
        as ``[..., 3, n_heads, d_head]`` gives q, k and v.

        >>> W, b = runner.qkv_weights(0)                                              # doctest: +SKIP
        >>> q, k, v = torch.addmm(b, x, W).view(len(x), 3, cfg.n_heads, cfg.d_head).unbind(1)  # doctest: +SKIP
        """
        return self._qkv(layer)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's activation function (``cfg.act_fn``) applied to ``x``, as in the runner's MLP.

        >>> runner.activation(torch.zeros(3))   # doctest: +SKIP
        tensor([0., 0., 0.])
        """
        return self._act(x)

    def attention_scale(self, layer: int) -> float:
        """The factor layer ``layer``'s attention scores are multiplied by.

        1/sqrt(d_head) if the model scales its scores (1 otherwise), divided by ``layer + 1``
        for models that scale by the inverse layer index (the Stanford CRFM runs).

        >>> runner.attention_scale(0) == 1 / math.sqrt(runner.cfg.d_head)   # GPT-2  # doctest: +SKIP
        True
        """
        cfg = self.cfg
        scale = 1.0 / math.sqrt(cfg.d_head) if cfg.scale_attn_weights else 1.0
        if cfg.scale_attn_by_inverse_layer_idx:
            scale /= layer + 1
        return scale

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
    ) -> Activations:
        """Run the model and return the requested activations.

        Exactly one input: ``tokens`` [batch, pos] (ids), ``embed`` [batch, pos, d_model]
        (replaces the token embedding; W_pos is still added), or ``resid`` [batch, pos,
        d_model] (the residual stream entering ``start_at_layer``).
        """
        hooks = list(dict.fromkeys(hooks))
        edits = dict(edits or {})
        if logits and "logits" not in hooks:
            hooks.append("logits")
        for n in [*hooks, *edits]:
            self.check_hook(n)
        if not hooks and not edits:
            raise InvalidInputError("nothing to compute: ask for at least one hook or logits=True")
        x, kind = self._check_input(tokens, embed, resid, start_at_layer)
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
            from tqdm.auto import tqdm

            it = tqdm(chunks, desc="forward", unit="batch", leave=False)
        with torch.inference_mode():
            for sl in it:
                store: dict[str, torch.Tensor] = {}
                try:
                    self._forward(x[sl], kind, start_at_layer, wanted, edits, last, store, sl)
                except _Stop:
                    pass
                parts.append(store)
        out = Activations()
        for name in hooks:
            ts = [p[name] for p in parts]
            out[name] = ts[0] if len(ts) == 1 else torch.cat(ts, 0)
        return out

    # ---- internals ---------------------------------------------------------------------
    def _check_input(self, tokens, embed, resid, start_at_layer):
        cfg = self.cfg
        given = [t is not None for t in (tokens, embed, resid)]
        if sum(given) != 1:
            raise InvalidInputError("give exactly one of tokens, embed or resid")
        if not 0 <= start_at_layer < cfg.n_layers:
            raise InvalidInputError(f"start_at_layer {start_at_layer} is out of range 0..{cfg.n_layers - 1}")
        if start_at_layer and resid is None:
            raise InvalidInputError("start_at_layer needs resid= (the residual stream entering that layer)")
        if tokens is not None:
            t = torch.as_tensor(tokens)
            if t.dim() == 1:
                t = t[None]
            if t.dim() != 2 or t.is_floating_point():
                raise InvalidInputError(f"tokens must be integer ids of shape [batch, pos]; got {tuple(t.shape)}")
            if t.numel() == 0:
                raise InvalidInputError("tokens are empty")
            if int(t.max()) >= cfg.d_vocab or int(t.min()) < 0:
                bad = int(t.max()) if int(t.max()) >= cfg.d_vocab else int(t.min())
                raise InvalidInputError(f"token id {bad} is outside the vocabulary 0..{cfg.d_vocab - 1}")
            x, kind = t.to(self.device), "tokens"
        else:
            x = embed if embed is not None else resid
            kind = "embed" if embed is not None else "resid"
            if x.dim() == 2:
                x = x[None]
            if x.dim() != 3 or x.shape[-1] != cfg.d_model:
                raise InvalidInputError(f"{kind} must have shape [batch, pos, {cfg.d_model}]; got {tuple(x.shape)}")
            x = x.to(self.device, self.dtype)
        if x.shape[1] > cfg.n_ctx:
            raise InvalidInputError(
                f"sequence of {x.shape[1]} positions is longer than the model's context n_ctx={cfg.n_ctx}; shorten it"
            )
        return x, kind

    def _forward(self, x, kind, start, wanted, edits, last, store, sl):
        cfg = self.cfg
        idx = self._hook_index

        def point(name: str, t: torch.Tensor, layer: int | None = None) -> torch.Tensor:
            fn = edits.get(name)
            if fn is not None:
                r = fn(t, HookContext(name, layer, sl))
                if r is not None:
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

        if kind == "resid":
            resid = x
        else:
            if kind == "tokens":
                W_E = self._w("embed.W_E", "the token embedding of the runner")
                emb = W_E[x]
            else:
                emb = x
            emb = point("hook_embed", emb)
            p = x.shape[1]
            W_pos = self._w("pos_embed.W_pos", "the positional embedding of the runner")
            pos = point("hook_pos_embed", W_pos[:p].expand(x.shape[0], p, cfg.d_model))
            resid = emb + pos
        for l in range(start, cfg.n_layers):
            resid = self._block(l, resid, point, needs)
        h = self._ln(resid, "ln_final", point, needs, None)
        W_U = self._w("unembed.W_U", "logits")
        b_U = self._w("unembed.b_U", "logits")
        point("logits", h @ W_U + b_U)

    def _ln(self, x, prefix: str, point, needs, layer):
        cfg = self.cfg
        if cfg.normalization != "LN":
            return x
        key = prefix if layer is None else f"blocks.{layer}.{prefix}"
        w = self._w(key + ".w", "a LayerNorm")
        b = self._w(key + ".b", "a LayerNorm")
        if needs(key + ".hook_scale") or needs(key + ".hook_normalized"):
            xc = x - x.mean(-1, keepdim=True)
            scale = point(key + ".hook_scale", (xc.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt(), layer)
            return point(key + ".hook_normalized", xc / scale * w + b, layer)
        return F.layer_norm(x, (cfg.d_model,), w, b, cfg.eps)

    def _block(self, l: int, resid, point, needs):
        cfg = self.cfg
        B, P, _ = resid.shape
        H, dh = cfg.n_heads, cfg.d_head
        pre = f"blocks.{l}."
        resid = point(pre + "hook_resid_pre", resid, l)
        xn = self._ln(resid, "ln1", point, needs, l)
        W_qkv, b_qkv = self._qkv(l)
        qkv = torch.addmm(b_qkv, xn.reshape(B * P, -1), W_qkv).view(B, P, 3, H, dh)
        q, k, v = qkv.unbind(2)
        if needs(pre + "attn.hook_q"):
            q = point(pre + "attn.hook_q", q, l)
        if needs(pre + "attn.hook_k"):
            k = point(pre + "attn.hook_k", k, l)
        if needs(pre + "attn.hook_v"):
            v = point(pre + "attn.hook_v", v, l)
        scale = self.attention_scale(l)
        if needs(pre + "attn.hook_attn_scores") or needs(pre + "attn.hook_pattern"):
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
            mask = torch.ones(P, P, dtype=torch.bool, device=scores.device).triu(1)
            scores = point(pre + "attn.hook_attn_scores", scores.masked_fill(mask, float("-inf")), l)
            # Half-precision scores are soft-maxed in float32; float64 runs stay float64 throughout.
            pattern = torch.softmax(scores if scores.dtype == torch.float64 else scores.float(), dim=-1).to(q.dtype)
            pattern = point(pre + "attn.hook_pattern", pattern, l)
            z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        else:
            z = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=scale
            ).transpose(1, 2)
        if needs(pre + "attn.hook_z"):
            z = point(pre + "attn.hook_z", z.contiguous(), l)
        W_O = self._w(pre + "attn.W_O", f"the runner's attention in layer {l}")
        b_O = self._w(pre + "attn.b_O", f"the runner's attention in layer {l}")
        if needs(pre + "attn.hook_result"):
            result = point(pre + "attn.hook_result", torch.einsum("bqhd,hdm->bqhm", z, W_O), l)
            attn_out = result.sum(2) + b_O
        else:
            attn_out = torch.addmm(b_O, z.reshape(B * P, H * dh), W_O.reshape(H * dh, -1)).view(B, P, -1)
        attn_out = point(pre + "hook_attn_out", attn_out, l)
        resid = point(pre + "hook_resid_mid", resid + attn_out, l)
        xn = self._ln(resid, "ln2", point, needs, l)
        why = f"the runner's MLP in layer {l}"
        W_in, b_in = self._w(pre + "mlp.W_in", why), self._w(pre + "mlp.b_in", why)
        W_out, b_out = self._w(pre + "mlp.W_out", why), self._w(pre + "mlp.b_out", why)
        h = point(pre + "mlp.hook_pre", torch.addmm(b_in, xn.reshape(B * P, -1), W_in).view(B, P, -1), l)
        h = point(pre + "mlp.hook_post", self._act(h), l)
        mlp_out = point(pre + "hook_mlp_out", torch.addmm(b_out, h.reshape(B * P, -1), W_out).view(B, P, -1), l)
        return point(pre + "hook_resid_post", resid + mlp_out, l)
