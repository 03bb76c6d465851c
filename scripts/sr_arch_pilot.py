"""Pilot, NOT a shipped recipe: does a two-scale trunk beat the 64x8 EDSR trunk at equal MACs?

The enhancer's loss is dominated by noise and unknown blur (scripts/sr_degradation_ablation.py), which
reward context. This trunk spends most of its MACs at half the LR resolution (PixelUnshuffle -> 128-wide
blocks -> PixelShuffle, as in DRUNet/NAFNet-style restorers), so its receptive field is ~1.6x the EDSR
trunk's for the same MACs. Same data, loss, schedule and seed as `skugen train grocery-sr2x` (v3 recipe);
it stops at step 2000 of the 8000-step schedule, to compare with the v3 val curve at 2000 (32.14 dB).

    python scripts/sr_arch_pilot.py runs/pilot-unet [--stop-after 2000]

Result (session 3, 2 threads, 467 s for 2000 steps, 1,808,972 params, 2.67 GMACs per 64x64 LR): val PSNR-Y
31.63 / 31.92 / 31.96 / 32.12 at steps 500 / 1000 / 1500 / 2000, vs the EDSR trunk's 31.79 / 32.00 / 32.00 /
32.14. No gain at equal MACs, so receptive field is not what holds the enhancer back; not pursued.
"""
import argparse, json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from skugen.export import models, train


class TwoScaleEnhancer(nn.Module):
    def __init__(self, cfg: models.SRConfig = models.SRConfig(), lo: int = 2, mid: int = 5, wide: int = 128):
        super().__init__()
        c = cfg.head
        self.cfg = cfg
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.pre = nn.Sequential(*[models.ResBlock(c, c, cfg.res_scale) for _ in range(lo)])
        self.down = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * c, wide, 1))
        self.mid = nn.Sequential(*[models.ResBlock(wide, wide, cfg.res_scale) for _ in range(mid)])
        self.up = nn.Sequential(nn.Conv2d(wide, 4 * c, 1), nn.PixelShuffle(2))
        self.post = models.ResBlock(c, c, cfg.res_scale)
        self.body_tail = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 3 * cfg.scale ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, x):
        f = self.head(x)
        a = self.pre(f)
        h, w = a.shape[-2:]
        b = F.pad(a, (0, w % 2, 0, h % 2), mode="replicate")        # odd LR sizes
        a = a + self.up(self.mid(self.down(b)))[..., :h, :w]
        f = f + self.body_tail(self.post(a))
        skip = F.interpolate(x, scale_factor=float(self.cfg.scale), mode="bilinear", align_corners=False)
        return skip + self.shuffle(self.out(f))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--stop-after", type=int, default=2000)
    a = ap.parse_args()
    cfg = train.TEACHER_ARCH["grocery-sr2x"]
    m = TwoScaleEnhancer(cfg)
    ex = torch.zeros(1, 3, 64, 64)
    print("params", models.count_params(m), "MACs/64x64", models.count_macs(m, (ex,)),
          "(EDSR 64x8:", models.count_macs(models.Enhancer(cfg), (ex,)), ")", flush=True)
    train.models.Enhancer = lambda c: TwoScaleEnhancer(c)
    t = time.time()
    train.train("grocery-sr2x", a.out, steps=8000, seed=0, threads=2, evaluate=False, stop_after=a.stop_after)
    print("train s", round(time.time() - t, 1), flush=True)
    print(open(f"{a.out}/train_log.jsonl").read())
