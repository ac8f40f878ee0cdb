"""The one forward block: every family's transformer layer, written once.

The Runner (hooked analysis passes), suffix-only patching and the trainer all compute a
layer with these functions, from the same tensors in the same layout:

- ``W_qkv [d_model, (n_heads + 2 * n_kv) * d_head]`` and ``b_qkv``: queries, then keys,
  then values, heads contiguous (GPT-2's ``c_attn`` is exactly this);
- ``W_O [n_heads * d_head, d_model]``, ``b_O``; ``W_in``/``W_gate [d_model, d_mlp]``,
  ``W_out [d_mlp, d_model]`` and their biases; ``ln1_w``/``ln1_b``, ``ln2_w``/``ln2_b``.

A block reads its parameters as attributes of ``p`` (a prepared-tensor view in the
Runner, ``nn.Parameter`` s in the trainer) and reports activations through ``hooks``:
``hooks(name, t)`` returns what flows on (an edit may replace it) and ``hooks.needs(name)``
says whether an optional view (an attention pattern, per-head results) must be built.
Names are the TransformerLens hook names inside a block (``attn.hook_pattern``).

A cached key/value prefix enters as ``past=(k, v)`` ([batch, prefix, n_kv, d_head], keys
already rotated) with ``start`` = its length: the block's positions are
``start .. start + S - 1`` and every query sees the prefix's keys.

>>> x = block_forward(cfg, 0, params, resid)[0]          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .config import ModelConfig


class NoHooks:
    """Hooks that record nothing (the trainer's)."""

    def __call__(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return t

    def needs(self, name: str) -> bool:
        return False


NO_HOOKS = NoHooks()


_ACTIVATIONS = {  # name: (out of place, in place or None)
    "gelu_new": (lambda x: F.gelu(x, approximate="tanh"), lambda x: torch.ops.aten.gelu_(x, approximate="tanh")),
    "gelu": (F.gelu, torch.ops.aten.gelu_),
    "silu": (F.silu, lambda x: F.silu(x, inplace=True)),
    "quick_gelu": (lambda x: x * torch.sigmoid(1.702 * x), None),
    "relu": (F.relu, torch.relu_),
}
_ALIASES = {"gelu_pytorch_tanh": "gelu_new", "gelu_fast": "gelu_new", "swish": "silu"}


def act_fn(name: str, in_place: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """``cfg.act_fn``'s function; ``in_place=True`` gives the form that overwrites its input
    where torch has one (the MLP uses it when no hook or gradient needs the pre-activation:
    one [tokens, d_mlp] buffer less, about 7 % of a gpt2-small forward on a CPU).

    >>> act_fn("relu")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    out, inplace = _ACTIVATIONS[_ALIASES.get(name, name)]
    return (inplace or out) if in_place else out


# ---- positions ---------------------------------------------------------------------------
def rotary_tables(r: int, base: float, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [len(positions), r] for the rotate-half pairing (i, i + r/2) of ``r`` rotary dims.

    Computed in float32 like transformers, then cast to the run dtype.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.int64, device=positions.device).float() / r))
    freqs = positions.float()[:, None] * inv_freq[None]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` dims of ``x`` [batch, pos, head, d_head] (rotate-half)."""
    r = cos.shape[-1]
    cos, sin = cos[:, None], sin[:, None]
    rot, rest = x[..., :r], x[..., r:]
    half = r // 2
    rotated = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
    out = rot * cos + rotated * sin
    return torch.cat([out, rest], dim=-1) if rest.shape[-1] else out


def allowed(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """[q, k] True where query position may attend to key position (causal, within the window)."""
    diff = q_pos[:, None] - k_pos[None, :]
    ok = diff >= 0
    return ok & (diff < window) if window is not None else ok


# ---- pieces ------------------------------------------------------------------------------
def norm(cfg: ModelConfig, x: torch.Tensor, w, b, hooks=NO_HOOKS, name: str = "ln1") -> torch.Tensor:
    """LayerNorm or RMSNorm (``cfg.normalization``); ``{name}.hook_scale|hook_normalized`` when asked."""
    if cfg.normalization == "none":
        return x
    if hooks.needs(name + ".hook_scale") or hooks.needs(name + ".hook_normalized"):
        xc = x - x.mean(-1, keepdim=True) if cfg.normalization == "LN" else x
        scale = hooks(name + ".hook_scale", (xc.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt())
        out = xc / scale * w
        return hooks(name + ".hook_normalized", out + b if cfg.normalization == "LN" else out)
    if cfg.normalization == "LN":
        return F.layer_norm(x, (x.shape[-1],), w, b, cfg.eps)
    return F.rms_norm(x, (x.shape[-1],), w, cfg.eps)


def expand_kv(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[batch, pos, n_kv, d_head] -> [batch, pos, n_heads, d_head] (query head h reads kv head h // group)."""
    g = n_heads // t.shape[2]
    return t if g == 1 else t.repeat_interleave(g, dim=2)


def qkv(cfg: ModelConfig, p, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries [B, S, H, dh], keys and values [B, S, n_kv, dh] of ``x`` (no rotary yet)."""
    B, S, _ = x.shape
    H, dh, G = cfg.n_heads, cfg.d_head, p.n_kv
    out = torch.addmm(p.b_qkv, x.reshape(B * S, -1), p.W_qkv)
    q, k, v = out.split([H * dh, G * dh, G * dh], dim=-1)
    return q.view(B, S, H, dh), k.view(B, S, G, dh), v.view(B, S, G, dh)


def attend(cfg: ModelConfig, layer: int, q, k, v, start: int = 0, hooks=NO_HOOKS,
           q_pos: torch.Tensor | None = None) -> torch.Tensor:
    """z [B, S, H, dh]: queries at positions ``q_pos`` (default ``start..start+S-1``) over keys at
    ``0..K-1`` (the prefix's, then the block's own), causal and within the layer's window."""
    B, S, H, _ = q.shape
    K = k.shape[1]
    scale, window = cfg.attention_scale(layer), cfg.window_at(layer)
    if q_pos is None:
        q_pos = torch.arange(start, start + S, device=q.device)
    if hooks.needs("attn.hook_attn_scores") or hooks.needs("attn.hook_pattern"):
        k, v = expand_kv(k, H), expand_kv(v, H)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
        mask = ~allowed(q_pos, torch.arange(K, device=q.device), window)
        scores = hooks("attn.hook_attn_scores", scores.masked_fill(mask, float("-inf")))
        # Half-precision scores are soft-maxed in float32; float64 runs stay float64 throughout.
        pattern = torch.softmax(scores if scores.dtype == torch.float64 else scores.float(), dim=-1).to(q.dtype)
        pattern = hooks("attn.hook_pattern", pattern)
        return torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    plain = window is None or window >= K
    causal = plain and K == S and int(q_pos[0]) == 0 and S > 1
    last_only = S == 1 and plain and int(q_pos[0]) == K - 1  # one query, the last position: sees every key
    mask = None if causal or last_only else allowed(q_pos, torch.arange(K, device=q.device), window)
    z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                       is_causal=causal, scale=scale, enable_gqa=k.shape[2] != H)
    return z.transpose(1, 2)


def attention(cfg: ModelConfig, layer: int, p, x: torch.Tensor, *, rope=None, past=None, start: int = 0,
              hooks=NO_HOOKS, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The attention sublayer: its output [B, S, d_model] and this segment's (k, v) for a cache.

    ``keep`` (indices into the segment): compute only those queries (every key and value is
    still computed); the output then has ``len(keep)`` positions.
    """
    B, _, _ = x.shape
    H, dh = cfg.n_heads, cfg.d_head
    q, k, v = qkv(cfg, p, x)
    if hooks.needs("attn.hook_q"):
        q = hooks("attn.hook_q", q)
    if k.shape[2] != H and any(hooks.needs(n) for n in ("attn.hook_k", "attn.hook_v", "attn.hook_rot_k")):
        k, v = expand_kv(k, H), expand_kv(v, H)  # hooks see one key/value head per query head
    if hooks.needs("attn.hook_k"):
        k = hooks("attn.hook_k", k)
    if hooks.needs("attn.hook_v"):
        v = hooks("attn.hook_v", v)
    if rope is not None:
        q = hooks("attn.hook_rot_q", apply_rotary(q, *rope)) if hooks.needs("attn.hook_rot_q") else apply_rotary(q, *rope)
        k = hooks("attn.hook_rot_k", apply_rotary(k, *rope)) if hooks.needs("attn.hook_rot_k") else apply_rotary(k, *rope)
    present = (k, v)
    if past is not None:
        pk, pv = past
        if pk.shape[2] != k.shape[2]:
            pk, pv, k, v = expand_kv(pk, H), expand_kv(pv, H), expand_kv(k, H), expand_kv(v, H)
        k, v = torch.cat([pk, k], 1), torch.cat([pv, v], 1)
    q_pos = None
    if keep is not None:
        q, q_pos = q[:, keep], start + keep
    S = q.shape[1]
    z = attend(cfg, layer, q, k, v, start, hooks, q_pos)
    if hooks.needs("attn.hook_z"):
        z = hooks("attn.hook_z", z.contiguous())
    if hooks.needs("attn.hook_result"):
        result = hooks("attn.hook_result", torch.einsum("bqhd,hdm->bqhm", z, p.W_O.view(H, dh, -1)))
        return result.sum(2) + p.b_O, present
    return torch.addmm(p.b_O, z.reshape(B * S, H * dh), p.W_O).view(B, S, -1), present


def mlp(cfg: ModelConfig, p, x: torch.Tensor, hooks=NO_HOOKS) -> torch.Tensor:
    """The MLP sublayer; gated (SwiGLU) models: act(x W_gate) * (x W_in), hook_pre is the gate."""
    B, S, _ = x.shape
    flat = x.reshape(B * S, -1)
    pre = hooks("mlp.hook_pre", torch.addmm(p.b_gate if cfg.gated_mlp else p.b_in, flat,
                                            p.W_gate if cfg.gated_mlp else p.W_in).view(B, S, -1))
    # Overwriting pre is safe only when no hook kept it (a kept float32 CPU tensor is the same
    # storage) and autograd does not need it.
    act = act_fn(cfg.act_fn, in_place=not (pre.requires_grad or hooks.needs("mlp.hook_pre")))
    if cfg.gated_mlp:
        lin = hooks("mlp.hook_pre_linear", torch.addmm(p.b_in, flat, p.W_in).view(B, S, -1))
        post = hooks("mlp.hook_post", act(pre) * lin)
    else:
        post = hooks("mlp.hook_post", act(pre))
    return torch.addmm(p.b_out, post.reshape(B * S, -1), p.W_out).view(B, S, -1)


# ---- the block ---------------------------------------------------------------------------
def block_forward(cfg: ModelConfig, layer: int, p, resid: torch.Tensor, *, rope=None, past=None, start: int = 0,
                  hooks=NO_HOOKS, keep: torch.Tensor | None = None):
    """One layer: ``(resid_post, (k, v))``. Pre-norm (GPT-2, Llama), post-norm (OPT-350m) or
    parallel attention and MLP (GPT-NeoX), by ``cfg``. ``keep``: after the keys and values,
    compute only these positions (suffix patching's last layer)."""
    resid = hooks("hook_resid_pre", resid)
    x = norm(cfg, resid, p.ln1_w, p.ln1_b, hooks, "ln1") if cfg.pre_norm else resid
    attn_out, kv = attention(cfg, layer, p, x, rope=rope, past=past, start=start, hooks=hooks, keep=keep)
    if keep is not None:
        resid = resid[:, keep]
    attn_out = hooks("hook_attn_out", attn_out)
    if cfg.parallel_attn_mlp:  # the MLP reads the block's input, not resid_mid
        mid = hooks("hook_resid_mid", resid + attn_out)
        out = hooks("hook_mlp_out", mlp(cfg, p, norm(cfg, resid, p.ln2_w, p.ln2_b, hooks, "ln2"), hooks))
        return hooks("hook_resid_post", mid + out), kv
    mid = resid + attn_out
    if not cfg.pre_norm:
        mid = norm(cfg, mid, p.ln1_w, p.ln1_b, hooks, "ln1")
    mid = hooks("hook_resid_mid", mid)
    x = norm(cfg, mid, p.ln2_w, p.ln2_b, hooks, "ln2") if cfg.pre_norm else mid
    out = hooks("hook_mlp_out", mlp(cfg, p, x, hooks))
    post = mid + out
    if not cfg.pre_norm:
        post = norm(cfg, post, p.ln2_w, p.ln2_b, hooks, "ln2")
    return hooks("hook_resid_post", post), kv


def layer_hook_names(cfg: ModelConfig) -> list[str]:
    """A block's hook points in the order it reaches them."""
    ln1 = ["ln1.hook_scale", "ln1.hook_normalized"]
    ln2 = ["ln2.hook_scale", "ln2.hook_normalized"]
    attn = ["attn.hook_q", "attn.hook_k", "attn.hook_v"]
    if cfg.positional == "rotary":
        attn += ["attn.hook_rot_q", "attn.hook_rot_k"]
    attn += ["attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out"]
    mlp_ = ["mlp.hook_pre", *(["mlp.hook_pre_linear"] if cfg.gated_mlp else []), "mlp.hook_post", "hook_mlp_out"]
    if cfg.normalization == "none":
        ln1 = ln2 = []
    if cfg.pre_norm:
        return ["hook_resid_pre", *ln1, *attn, "hook_resid_mid", *ln2, *mlp_, "hook_resid_post"]
    return ["hook_resid_pre", *attn, *ln1, "hook_resid_mid", *mlp_, *ln2, "hook_resid_post"]

