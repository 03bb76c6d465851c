"""Structured pruning of the diffusion denoiser (fmnist-diffusion) with torch-pruning.

The families' unit-based pruning (skugen.export.prune) roots one group per config width; the denoiser's
prunable widths are each ResBlock's inner width (its conv1 outputs: the dependency graph couples the time/text
embedding Linear, the second GroupNorm and conv2's inputs) and each cross-attention's query/key/value width,
which q @ k^T couples through an activation-activation matmul the graph does not trace, so it is cut here by
joint L1 with torch-pruning's layer functions. Returns the same PruneResult as the families.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from skugen.errors import InputError, ModelError

from . import models
from .prune import PruneConfig, PruneResult



class _CrossAttentionPruner(tp.pruner.BasePruningFunc):
    """CrossAttention is channel-preserving in the image stream (x + out(attn)): removing stream channel c
    removes input c of norm/q and output c of `out`. Its query/key/value width is pruned separately
    (_prune_attention_dim), because q @ k^T couples a conv's outputs with a linear's outputs through an
    activation-activation matmul, which the dependency graph does not trace."""

    def prune_out_channels(self, layer, idxs: Sequence[int]) -> nn.Module:
        tp.prune_groupnorm_out_channels(layer.norm, idxs)
        tp.prune_conv_in_channels(layer.q, idxs)
        tp.prune_conv_out_channels(layer.out, idxs)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer) -> int:
        return layer.out.out_channels

    def get_in_channels(self, layer) -> int:
        return layer.q.in_channels


def _prune_attention_dim(attn, keep: int) -> tuple[int, ...]:
    """Keep the `keep` query/key/value channels with the largest joint L1 norm (q and k rows, v rows, out
    columns: the four tensors one channel of the attention lives in); torch-pruning's functions cut them."""
    n = attn.q.out_channels
    if keep >= n:
        return tuple(range(n))
    score = (attn.q.weight.abs().flatten(1).sum(1) + attn.k.weight.abs().sum(1) + attn.v.weight.abs().sum(1)
             + attn.out.weight.abs().transpose(0, 1).flatten(1).sum(1))
    drop = torch.argsort(score)[: n - keep].tolist()
    for fn, m in ((tp.prune_conv_out_channels, attn.q), (tp.prune_linear_out_channels, attn.k),
                  (tp.prune_linear_out_channels, attn.v), (tp.prune_conv_in_channels, attn.out)):
        fn(m, drop)
    return tuple(sorted(set(range(n)) - set(drop)))


def prune_diffusion(model: nn.Module, inner: Sequence[int], attn_dim: Sequence[int]) -> PruneResult:
    """A COPY of a DiffusionModel with its denoiser's ResBlock inner widths (conv1 outputs: coupled by the
    dependency graph to the time/text embedding Linear, the second GroupNorm and conv2's inputs) and its
    cross-attention widths cut to `inner` / `attn_dim` by group L1 magnitude. The residual streams, the
    text encoder and every I/O layer are untouched."""
    from .diffusion import CrossAttention, DiffusionModel

    if not isinstance(model, DiffusionModel):
        raise ModelError(f"prune_diffusion takes a DiffusionModel, not {type(model).__name__}")
    tcfg = models.config_from_model(model)
    if len(inner) != len(tcfg.inner) or len(attn_dim) != len(tcfg.attn_dim):
        raise InputError(f"inner has {len(tcfg.inner)} widths and attn_dim {len(tcfg.attn_dim)}; got "
                         f"{len(inner)} and {len(attn_dim)}")
    for w, t in [*zip(inner, tcfg.inner), *zip(attn_dim, tcfg.attn_dim)]:
        if w % 8 or w < 8 or w > t:
            raise InputError(f"pruned width {w} must be a multiple of 8 in [8, {t}] (ORT/TensorRT kernels, GroupNorm "
                             "groups)")
    student = copy.deepcopy(model).eval().requires_grad_(True)
    u = student.denoiser
    c = tcfg
    ex = (torch.randn(2, c.channels, c.image_size, c.image_size), torch.rand(2),
          torch.randn(2, c.context, c.text_dim), torch.ones(2, c.context))
    attns = [m for m in u.modules() if isinstance(m, CrossAttention)]
    for m in attns:
        m.forward = lambda x, ctx, bias: x.clone()   # opaque: "x in, same channels out" (see _CrossAttentionPruner)
    try:
        with torch.enable_grad():
            dg = tp.DependencyGraph().build_dependency(u, example_inputs=ex,
                                                       customized_pruners={CrossAttention: _CrossAttentionPruner()})
    finally:
        for m in attns:
            del m.forward
    imp = tp.importance.MagnitudeImportance(p=1)
    kept: dict[str, tuple[int, ...]] = {}
    for i, (blk, k) in enumerate(zip(u.res, inner)):
        n = blk.conv1.out_channels
        if k < n:
            group = dg.get_pruning_group(blk.conv1, tp.prune_conv_out_channels, list(range(n)))
            layers = {dep.target.module for dep, _ in group
                      if isinstance(dep.target.module, (nn.Conv2d, nn.Linear, nn.GroupNorm))}
            assert layers <= {blk.conv1, blk.emb, blk.n2, blk.conv2}, f"inner{i} reaches beyond its block: {layers}"
            drop = torch.argsort(imp(group))[: n - k].tolist()
            dg.get_pruning_group(blk.conv1, tp.prune_conv_out_channels, drop).prune()
            kept[f"inner{i}"] = tuple(sorted(set(range(n)) - set(drop)))
    for i, (a, k) in enumerate(zip(u.attn, attn_dim)):
        kept[f"attn{i}"] = _prune_attention_dim(a, k)
    student.zero_grad(set_to_none=True)
    scfg = models.config_from_model(student)
    rebuilt = models.build(scfg)
    rebuilt.load_state_dict(student.state_dict(), strict=True)
    rebuilt.eval()
    with torch.no_grad():
        tokens = torch.zeros(2, c.context, dtype=torch.int64)
        tokens[:, :3] = torch.tensor([1, 5, 2])
        xx, tt = ex[0], ex[1]
        assert torch.allclose(student(xx, tt, tokens), rebuilt(xx, tt, tokens), atol=1e-5)
    from .diffusion import denoiser_macs

    m0, m1 = denoiser_macs(model), denoiser_macs(rebuilt)
    p0, p1 = models.count_params(model.denoiser), models.count_params(rebuilt.denoiser)
    widths = {**{f"inner{i}": (a, b) for i, (a, b) in enumerate(zip(tcfg.inner, scfg.inner))},
              **{f"attn{i}": (a, b) for i, (a, b) in enumerate(zip(tcfg.attn_dim, scfg.attn_dim))}}
    return PruneResult(rebuilt, scfg, tcfg, PruneConfig(ratio=None, importance="l1"), widths, kept, m0, m1, p0, p1)
