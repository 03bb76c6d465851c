"""What `generate` / `enhance` return: images plus provenance, saving and a lazy Report."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import prepost
from .errors import InputError
from .io import atomic_write_bytes
from .report import CallTiming, Report

IPTC_AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@dataclass
class Result:
    """What generate/enhance return.

    images: uint8 (N, H, W, C) array, or a list of (H, W, C) arrays when sizes differ.
    labels / class_names / seeds / seed_indices: per image (generator), None for the enhancer.
        Image i came from latents row `seed_indices[i]` of default_rng(seeds[i]); None when
        the caller passed latents.
    report: a Report with this call's pre/infer/post latency and the pipeline's rolling
        session statistics as of when you first read it.
    """

    images: np.ndarray | list
    labels: list | None
    class_names: list | None
    seeds: list | None
    seed_indices: list | None
    timing: CallTiming
    sources: list | None = field(default=None, repr=False)  # enhancer: input file stems
    # diffusion: the prompt of each image, the words its vocabulary lacked, and how it was sampled
    prompts: list | None = None
    unknown_words: list | None = field(default=None, repr=False)
    sampling: dict | None = field(default=None, repr=False)
    prompt_provenance: dict = field(default_factory=dict, repr=False)  # tEXt shared by every prompt's image
    _prov_base: dict = field(default_factory=dict, repr=False)  # tEXt fields shared by every image
    _make_report: Any = field(default=None, repr=False)
    _report: Report | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def provenance(self) -> list[dict[str, str]]:
        """Per-image PNG tEXt fields (built on demand: most calls never save)."""
        base = self._prov_base
        if self.prompts is not None:  # diffusion: the prompt is the provenance of the image
            return [{**base, **self.prompt_provenance, "Prompt": p,
                     "Seed": "" if self.seeds[k] is None else str(self.seeds[k]),
                     "Seed-Index": "" if self.seed_indices[k] is None else str(self.seed_indices[k]),
                     "DigitalSourceType": IPTC_AI} for k, p in enumerate(self.prompts)]
        if self.labels is None:  # enhancer
            return [{**base, **({"Source-File": nm} if nm else {})} for nm in (self.sources or [None] * len(self))]
        return [{**base, "Class": self.class_names[k], "Class-Index": str(lab),
                 "Seed": "" if self.seeds[k] is None else str(self.seeds[k]),
                 "Seed-Index": "" if self.seed_indices[k] is None else str(self.seed_indices[k]),
                 "DigitalSourceType": IPTC_AI} for k, lab in enumerate(self.labels)]

    @property
    def report(self) -> Report:
        if self._report is None:
            self._report = self._make_report(self.timing)
        return self._report

    def _names(self) -> list[str]:
        names = []
        for i in range(len(self)):
            if self.prompts is not None:
                slug = re.sub(r"[^a-z0-9]+", "-", self.prompts[i].lower()).strip("-")[:40] or "prompt"
                seed = f"_seed{self.seeds[i]}-{self.seed_indices[i]}" if self.seeds[i] is not None else ""
                names.append(f"{i:04d}_{slug}{seed}.png")
            elif self.class_names is not None:
                cls = prepost._norm_name(self.class_names[i]) or f"class{self.labels[i]}"
                seed = f"_seed{self.seeds[i]}-{self.seed_indices[i]}" if self.seeds and self.seeds[i] is not None else ""
                names.append(f"{i:04d}_{cls}{seed}.png")
            else:
                stem = (self.sources[i] if self.sources else None) or "image"
                names.append(f"{i:04d}_{stem}_x{self._prov_base.get('Scale', '')}.png")
        return names

    def save(self, directory: str | os.PathLike) -> list[Path]:
        """Write one PNG per image (atomically) with provenance tEXt; returns the paths.

        Never overwrites: names repeat across calls (index, source stem, seed), so a taken name gets a
        "-1", "-2", ... suffix and `for im in images: pipe.enhance(im).save(d)` keeps every result."""
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise InputError(f"{d} exists and is not a directory; pass a directory to save into")
        created = _now()
        paths = []
        for name, img, text in zip(self._names(), self.images, self.provenance):
            paths.append(atomic_write_bytes(d / name, prepost.encode_png(img, {**text, "Creation Time": created}),
                                            exclusive=True))
        return paths

    def grid(self, cols: int | None = None, pad: int = 2) -> np.ndarray:
        """All images tiled into one uint8 (H, W, C) array (a contact sheet)."""
        return prepost.make_grid(list(self.images), cols=cols, pad=pad)

    def save_grid(self, path: str | os.PathLike, cols: int | None = None, pad: int = 2) -> Path:
        """One grid PNG with provenance tEXt summarising every image (classes, seeds)."""
        text = dict(self.provenance[0])
        for k in ("Class", "Seed", "Seed-Index", "Source-File", "Prompt"):
            text.pop(k, None)
        if self.prompts is not None:
            text["Prompts"] = " | ".join(self.prompts)
        elif self.class_names is not None:
            text["Classes"] = ",".join(self.class_names)
            if self.seeds and self.seeds[0] is not None:
                text["Seed"] = str(self.seeds[0])  # one seed per call: row-major latents, see seed_indices
        text["Images"] = str(len(self))
        text["Creation Time"] = _now()
        return atomic_write_bytes(Path(path), prepost.encode_png(self.grid(cols, pad), text))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
