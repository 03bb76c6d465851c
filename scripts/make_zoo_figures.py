"""Figures for the zoo's docs: a 10x10 cGAN sample grid (one row per class) and an enhancer before/after strip.

    python scripts/make_zoo_figures.py            # writes docs/cgan_samples.png, docs/sr_before_after.png
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from skugen.evaluate import bicubic_upscale
from skugen.export import data, zoo
from skugen.io import atomic_file

DOCS = Path(__file__).resolve().parent.parent / "docs"


def cgan_grid(name: str = "fmnist-cgan", out: Path = DOCS / "cgan_samples.png", seed: int = 0) -> Path:
    gen, _ = zoo.load(name)
    labels = np.repeat(np.arange(10), 10)
    imgs = zoo.generate(gen, labels, seed)                      # (100, 1, 32, 32) in [-1, 1]
    u8 = ((imgs.clamp(-1, 1) + 1) * 127.5).round().byte().numpy()[:, 0]
    scale, label_w = 3, 90
    canvas = Image.new("L", (label_w + 10 * 32 * scale, 10 * 32 * scale), 255)
    draw = ImageDraw.Draw(canvas)
    for i, im in enumerate(u8):
        r, c = divmod(i, 10)
        canvas.paste(Image.fromarray(im).resize((32 * scale, 32 * scale), Image.NEAREST),
                     (label_w + c * 32 * scale, r * 32 * scale))
        if c == 0:
            draw.text((4, r * 32 * scale + 40), data.FMNIST_CLASSES[r], fill=0)
    with atomic_file(out) as af:
        canvas.save(af.tmp, format="PNG")
    return out


def sr_strip(name: str = "grocery-sr2x", out: Path = DOCS / "sr_before_after.png", n: int = 4) -> Path:
    model, _ = zoo.load(name)
    rows = []
    for which in ("test", "iconic"):
        lr, hr = data.sr_eval_set(which, n)
        sr = zoo.enhance_np(model, lr)
        bic = bicubic_upscale(lr, 2)
        near = np.stack([np.asarray(Image.fromarray(x).resize((x.shape[1] * 2, x.shape[0] * 2), Image.NEAREST)) for x in lr])
        h, w = hr.shape[1:3]  # iconic images are evaluated whole (198 px): show their centre 128 px like test
        y, x = (h - 128) // 2, (w - 128) // 2
        for i in range(n):
            rows.append(np.concatenate([a[i, y:y + 128, x:x + 128] for a in (near, bic, sr, hr)], axis=1))
    strip = np.concatenate(rows, axis=0)
    img = Image.fromarray(strip)
    head = Image.new("RGB", (img.width, 20), (255, 255, 255))
    d = ImageDraw.Draw(head)
    for j, t in enumerate(("degraded input (x2 nearest)", "bicubic", "grocery-sr2x", "ground truth")):
        d.text((j * 128 + 4, 4), t, fill=(0, 0, 0))
    full = Image.new("RGB", (img.width, img.height + 20))
    full.paste(head, (0, 0))
    full.paste(img, (0, 20))
    with atomic_file(out) as af:
        full.save(af.tmp, format="PNG")
    return out


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    which = sys.argv[1:] or ["cgan", "sr"]
    if "cgan" in which:
        print(cgan_grid())
    if "sr" in which:
        print(sr_strip())
