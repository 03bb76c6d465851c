"""The torch judge: the fmnist-classifier (or any zoo / directory classifier) behind skugen.evaluate.Judge.

One wrapper for every toolchain caller (zoo eval, bench quality, prune sensitivity):

    judge = zoo.load_judge()                      # the zoo's fmnist-classifier ($SKUGEN_CLASSIFIER)
    judge.features(images_u8), judge.predict(images_u8)          # Judge protocol: (N, H, W, C) uint8
    feats, preds = judge.outputs(x)               # model space: (N, 1, 32, 32) float in [-1, 1]

The numbers come from skugen.evaluate (FID-proxy, class fidelity); this module only runs the
classifier and draws its Fashion-MNIST reference sets.
"""
from __future__ import annotations

import os

import numpy as np
import torch


class TorchJudge:
    """A classifier with `.features(x)` (penultimate) and `.head(f)` (logits), run eagerly in batches.

    batch: images per forward pass; threads: torch intra-op threads while it runs (None: leave as is).
    """

    def __init__(self, model: torch.nn.Module, card: dict | None = None, path: str | os.PathLike | None = None,
                 batch: int = 256, threads: int | None = None) -> None:
        self.model, self.card, self.dir = model.eval(), card, path
        self.batch, self.threads = int(batch), threads
        self._ref: dict[int, np.ndarray] = {}
        self._rr: dict[tuple[int, bool], float] = {}

    # ------------------------------------------------------------------------- running
    @torch.no_grad()
    def outputs(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, 32, 32) float in [-1, 1] (array or tensor) -> (features (N, D), predicted labels (N,))."""
        if not isinstance(x, torch.Tensor):
            x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            feats, preds = [], []
            for i in range(0, len(x), self.batch):
                f = self.model.features(x[i:i + self.batch])
                feats.append(f.numpy())
                preds.append(self.model.head(f).argmax(1).numpy())
        finally:
            if self.threads:
                torch.set_num_threads(prev)
        return np.concatenate(feats), np.concatenate(preds)

    @staticmethod
    def to_model(images_u8: np.ndarray) -> np.ndarray:
        """What users see (N, H, W, C) uint8 -> the classifier's input (N, C, H, W) float32 in [-1, 1]."""
        return images_u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0

    def features(self, images_u8: np.ndarray) -> np.ndarray:
        return self.outputs(self.to_model(images_u8))[0]

    def predict(self, images_u8: np.ndarray) -> np.ndarray:
        return self.outputs(self.to_model(images_u8))[1]

    def fits(self, images_u8: np.ndarray, n_classes: int) -> str | None:
        """Why this classifier cannot judge these images (None: it can)."""
        c = self.card["config"] if self.card else None
        if c is None:
            return None
        if images_u8.shape[1:] != (c["image_size"], c["image_size"], c["in_ch"]):
            return (f"the classifier takes {c['image_size']}x{c['image_size']}x{c['in_ch']} images, the generator "
                    f"makes {images_u8.shape[1:]}")
        if c["n_classes"] != n_classes:
            return f"the classifier knows {c['n_classes']} classes, the generator {n_classes}"
        return None

    # ------------------------------------------------------------------------- Fashion-MNIST references
    def reference_features(self, n: int) -> np.ndarray:
        """Features of the first n Fashion-MNIST test images (the FID-proxy reference set; cached per n)."""
        if n not in self._ref:
            from . import data

            x, _ = data.load_fmnist("test")
            self._ref[n] = self.outputs(data.fmnist_to_model(x[:n]))[0]
        return self._ref[n]

    def train_features(self, n: int, sort: bool = True) -> np.ndarray:
        """Features of n Fashion-MNIST train images drawn by default_rng(0) (without replacement).

        sort: in index order (bench) or in draw order (the zoo cards); the same set, so the
        FID-proxy agrees to round-off.
        """
        from . import data

        x, _ = data.load_fmnist("train")
        idx = np.random.default_rng(0).choice(len(x), n, replace=False)
        return self.outputs(data.fmnist_to_model(x[np.sort(idx) if sort else idx]))[0]

    def real_vs_real(self, n: int, sort: bool = True) -> float:
        """FID-proxy of n train vs the first n test images: the floor a perfect generator would reach."""
        from skugen.evaluate import fid_proxy

        if (n, sort) not in self._rr:
            self._rr[(n, sort)] = fid_proxy(self.train_features(n, sort), self.reference_features(n))
        return self._rr[(n, sort)]
