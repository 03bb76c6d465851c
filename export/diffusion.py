"""fmnist-diffusion: a prompt-conditioned rectified-flow generator (text encoder + UNet denoiser).

Two graphs, exported separately (the denoiser runs N times per image, the text encoder once):
    TextEncoder:  tokens (B, L) int64                                -> context (B, L, D)
    UNet:         x (B, 1, 32, 32), t (B,), context (B, L, D), mask (B, L) -> v (B, 1, 32, 32)

Objective: rectified flow / flow matching (Liu et al. 2022, Lipman et al. 2022). x_t = (1 - t) x0 + t eps,
the network predicts the velocity v = eps - x0, and sampling integrates dx/dt = v from t = 1 (noise) to
t = 0 (image) with Euler steps. Chosen over v-prediction DDPM because the straight paths need few steps
and make reflow (the step-distillation route for the student) the same loss with other pairs.
Classifier-free guidance: prompts are dropped to the empty prompt 10% of the time in training; sampling
runs [cond; uncond] as ONE batch per step and mixes v = v_u + g (v_c - v_u).

Deployment rules (DESIGN.md): no ConvTranspose (nearest + conv), widths multiples of 8, GroupNorm and
plain MatMul/Softmax attention that ONNX Runtime, OpenVINO and TensorRT all run. Every prunable width is in
the config (`inner`, `attn_dim`), so a pruned UNet is rebuilt from its config like the other families.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DiffusionConfig:
    family: str = "diffusion"
    image_size: int = 32
    channels: int = 1
    widths: tuple[int, ...] = (32, 64, 96)            # residual stream per level: 32, 16, 8 px
    # conv1 width of each ResBlock (the prunable inner width): down x3, mid x2, up x3
    inner: tuple[int, ...] = (32, 64, 96, 96, 96, 96, 64, 32)
    # query/key width of each cross-attention block: down@16, down@8, mid@8, up@8, up@16
    attn_dim: tuple[int, ...] = (64, 96, 96, 96, 64)
    cond_dim: int = 128                               # time + pooled-text embedding fed to every ResBlock
    groups: int = 8                                   # GroupNorm groups (every width is a multiple of 8)
    # text encoder
    vocab_size: int = 128
    context: int = 16                                 # tokens incl. BOS/EOS
    text_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    # sampling defaults written into the bundle
    steps: int = 32                                   # Euler steps the model was evaluated with
    guidance: float = 3.0                             # classifier-free guidance scale
    max_steps: int = 1000                             # the largest step count the runtime accepts
    distilled_guidance: float = 0.0                   # > 0: a student with this CFG scale baked in (no CFG at run time)


# ----------------------------------------------------------------------------- text encoder


class TextBlock(nn.Module):
    """Pre-norm transformer block written with plain ops (nn.TransformerEncoderLayer's fused eval path does
    not export cleanly, and explicit Linear/MatMul/Softmax are what the INT8 tooling knows)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.n1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.n2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # x (B, L, D), bias (B, 1, 1, L)
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.n1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, d/h)
        attn = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5 + bias, dim=-1)     # (B, h, L, L)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.ff(self.n2(x))


class TextEncoder(nn.Module):
    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.text_dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.context, cfg.text_dim) * 0.02)
        self.blocks = nn.ModuleList(TextBlock(cfg.text_dim, cfg.text_heads) for _ in range(cfg.text_layers))
        self.norm = nn.LayerNorm(cfg.text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L) int64 -> (B, L, D)
        keep = (tokens != 0).to(self.pos.dtype)                  # PAD = 0 (skugen.tokenizer)
        bias = ((keep - 1.0) * 1e4)[:, None, None, :]           # (B, 1, 1, L): padding is never attended to
        x = self.tok(tokens) + self.pos
        for blk in self.blocks:
            x = blk(x, bias)
        return self.norm(x)


# ----------------------------------------------------------------------------- UNet


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) in [0, 1] -> (B, dim) sinusoidal features of 1000 t (the transformer/DDPM frequencies)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, inner: int, cout: int, cond: int, groups: int):
        super().__init__()
        self.n1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, inner, 3, padding=1)
        self.emb = nn.Linear(cond, inner)
        self.n2 = nn.GroupNorm(groups, inner)
        self.conv2 = nn.Conv2d(inner, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # x (B, cin, H, W), c (B, cond)
        h = self.conv1(F.silu(self.n1(x))) + self.emb(c)[:, :, None, None]
        h = self.conv2(F.silu(self.n2(h)))
        return h + (x if self.skip is None else self.skip(x))


class CrossAttention(nn.Module):
    """Image positions attend to the prompt's tokens (single head: the widths are 64-96)."""

    def __init__(self, ch: int, dim: int, text_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.q = nn.Conv2d(ch, dim, 1)
        self.k = nn.Linear(text_dim, dim)
        self.v = nn.Linear(text_dim, dim)
        self.out = nn.Conv2d(dim, ch, 1)
        nn.init.zeros_(self.out.weight)   # starts as identity: text conditioning is learned in gradually
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.q(self.norm(x)).flatten(2).transpose(1, 2)                # (B, HW, dim)
        k, v = self.k(ctx), self.v(ctx)                                    # (B, L, dim)
        attn = torch.softmax(q @ k.transpose(1, 2) * q.shape[-1] ** -0.5 + bias, dim=-1)  # (B, HW, L)
        o = (attn @ v).transpose(1, 2).reshape(b, -1, h, w)                # (B, dim, H, W)
        return x + self.out(o)


class UNet(nn.Module):
    """(x_t, t, context, mask) -> velocity. Levels 32 -> 16 -> 8 px; cross-attention at 16 and 8 px."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.cfg = cfg
        w0, w1, w2 = cfg.widths
        g, c, i, a = cfg.groups, cfg.cond_dim, cfg.inner, cfg.attn_dim
        self.time = nn.Sequential(nn.Linear(64, c), nn.SiLU(), nn.Linear(c, c))
        self.text = nn.Linear(cfg.text_dim, c)
        self.conv_in = nn.Conv2d(cfg.channels, w0, 3, padding=1)
        self.res = nn.ModuleList([
            ResBlock(w0, i[0], w0, c, g), ResBlock(w0, i[1], w1, c, g), ResBlock(w1, i[2], w2, c, g),   # down
            ResBlock(w2, i[3], w2, c, g), ResBlock(w2, i[4], w2, c, g),                                 # mid
            ResBlock(2 * w2, i[5], w2, c, g), ResBlock(w2 + w1, i[6], w1, c, g),                        # up
            ResBlock(w1 + w0, i[7], w0, c, g),
        ])
        self.attn = nn.ModuleList([CrossAttention(ch, d, cfg.text_dim, g) for ch, d in zip((w1, w2, w2, w2, w1), a)])
        self.down = nn.ModuleList([nn.Conv2d(w0, w0, 3, stride=2, padding=1), nn.Conv2d(w1, w1, 3, stride=2, padding=1)])
        self.up = nn.ModuleList([nn.Conv2d(w2, w2, 3, padding=1), nn.Conv2d(w1, w1, 3, padding=1)])
        self.n_out = nn.GroupNorm(g, w0)
        self.conv_out = nn.Conv2d(w0, cfg.channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (context * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, D)
        c = F.silu(self.time(timestep_embedding(t, 64)) + self.text(pooled))                     # (B, cond)
        bias = ((mask - 1.0) * 1e4)[:, None, :]                                                  # (B, 1, L)
        r, at = self.res, self.attn
        h0 = r[0](self.conv_in(x), c)                                          # (B, w0, 32, 32)
        h1 = at[0](r[1](self.down[0](h0), c), context, bias)                   # (B, w1, 16, 16)
        h2 = at[1](r[2](self.down[1](h1), c), context, bias)                   # (B, w2, 8, 8)
        h = r[4](at[2](r[3](h2, c), context, bias), c)                         # mid, 8 px
        h = at[3](r[5](torch.cat([h, h2], 1), c), context, bias)               # (B, w2, 8, 8)
        h = self.up[0](F.interpolate(h, scale_factor=2.0, mode="nearest"))    # (B, w2, 16, 16)
        h = at[4](r[6](torch.cat([h, h1], 1), c), context, bias)               # (B, w1, 16, 16)
        h = self.up[1](F.interpolate(h, scale_factor=2.0, mode="nearest"))    # (B, w1, 32, 32)
        h = r[7](torch.cat([h, h0], 1), c)                                     # (B, w0, 32, 32)
        return self.conv_out(F.silu(self.n_out(h)))                            # (B, 1, 32, 32)


class DiffusionModel(nn.Module):
    """The trained unit (what model.safetensors holds): text encoder + denoiser, sampled in eager PyTorch."""

    def __init__(self, cfg: DiffusionConfig = DiffusionConfig()):
        super().__init__()
        self.cfg = cfg
        self.text_encoder = TextEncoder(cfg)
        self.denoiser = UNet(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Training forward: velocity for noisy images x at times t under prompts `tokens`."""
        return self.denoiser(x, t, self.text_encoder(tokens), (tokens != 0).float())

    @torch.no_grad()
    def sample(self, tokens: torch.Tensor, null: torch.Tensor, steps: int | None = None,
               guidance: float | None = None, noise: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """Euler sampling from t = 1 to 0 with CFG batched as [cond; uncond]: (B, L) tokens -> (B, 1, 32, 32)."""
        steps = steps or self.cfg.steps
        g = self.cfg.guidance if guidance is None else guidance
        b = tokens.shape[0]
        s = self.cfg.image_size
        x = noise if noise is not None else torch.randn(b, self.cfg.channels, s, s,
                                                         generator=torch.Generator().manual_seed(seed))
        both = torch.cat([tokens, null.expand(b, -1)]) if g != 1.0 else tokens
        ctx, mask = self.text_encoder(both), (both != 0).float()
        ts = torch.linspace(1.0, 0.0, steps + 1)
        for i in range(steps):
            t = ts[i].expand(len(both))
            xx = torch.cat([x, x]) if g != 1.0 else x
            v = self.denoiser(xx, t, ctx, mask)
            if g != 1.0:
                vc, vu = v.chunk(2)
                v = vu + g * (vc - vu)
            x = x + (ts[i + 1] - ts[i]) * v
        return x.clamp(-1.0, 1.0)


def flow_loss(model: DiffusionModel, x0: torch.Tensor, tokens: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Rectified-flow loss with logit-normal t (SD3: more weight mid-trajectory, where the velocity is hardest)."""
    b = x0.shape[0]
    t = torch.sigmoid(torch.randn(b, generator=g))
    eps = torch.randn(x0.shape, generator=g)
    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * eps
    return F.mse_loss(model(xt, t, tokens).float(), eps - x0)


def denoiser_macs(model: DiffusionModel) -> int:
    """MACs of ONE denoiser call for ONE sample (torch's aten FLOP counter: convs, linears and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    x = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size)
    ctx, mask = torch.zeros(1, cfg.context, cfg.text_dim), torch.ones(1, cfg.context)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.denoiser.eval()(x, torch.full((1,), 0.5), ctx, mask)
    return int(fc.get_total_flops() // 2)


def text_encoder_macs(model: DiffusionModel) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.text_encoder.eval()(torch.ones(1, model.cfg.context, dtype=torch.int64))
    return int(fc.get_total_flops() // 2)
