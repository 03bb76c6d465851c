"""Tiling for large photos: fixed-size LR tiles with overlap, stitched by crop-and-stitch.

Why crop-and-stitch (not feathered blending): a fully convolutional enhancer's
output pixel depends only on LR pixels within its receptive radius r. A tile
whose *core* stays at least r pixels away from every tile edge that is not an
image edge therefore reproduces the untiled output exactly in that core (up to
float rounding from different conv algorithms). The cores partition the image,
so the stitched image equals the untiled one: no seams to hide and nothing to
blend, and each tile's uint8 core is written straight into the output buffer,
so no whole-image float tensor ever exists. The bundle's `tile.overlap` must be
>= 2 r for this; the export step sets it from the architecture.

Layout of one axis of length n with tile size T and overlap O (T > O >= 0):
    starts = 0, S, 2S, ... (S = T - O), the last one moved back to n - T so every
    tile is exactly T long (one shape -> tiles batch together, and fixed-shape
    engines work); an axis shorter than T is one tile of length n.
    Neighbouring tiles overlap by >= O; the cut between them sits in the middle of
    their overlap, so every core edge is >= O // 2 from the tile edge.

Memory for one batch of B tiles (T LR px, scale s, C channels, float32):
    input B*C*T*T*4 bytes + output B*C*(sT)^2*4 bytes, independent of the photo size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

import numpy as np

from .errors import InputError

T = TypeVar("T")

# Cap on one batch's float32 output tensor, so a large manifest max_batch cannot blow memory up:
# post-processing holds ~3-4 temporaries of that size, so 16 MiB keeps a batch's working set under
# ~64 MiB (Jetson-friendly) while still giving ~20 tiles of 128 px per call.
DEFAULT_BATCH_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Tile:
    """One LR window and the part of it (its core) that goes into the output. LR pixel coordinates."""

    y: int  # window top-left
    x: int
    h: int  # window size
    w: int
    cy0: int  # core [cy0, cy1) x [cx0, cx1), absolute coordinates, inside the window
    cy1: int
    cx0: int
    cx1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.h, self.w


def plan_axis(n: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles of one axis: [(start, length, core_start, core_end), ...]; the cores partition [0, n)."""
    if n <= size:
        return [(0, n, 0, n)]
    stride = size - overlap
    starts = list(range(0, n - size, stride)) + [n - size]
    # The cut between tile i and i+1 is the middle of their overlap [starts[i+1], starts[i] + size).
    cuts = [(starts[i + 1] + starts[i] + size) // 2 for i in range(len(starts) - 1)]
    bounds = [0] + cuts + [n]
    return [(s, size, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def plan_tiles(h: int, w: int, size: int, overlap: int) -> list[Tile]:
    """Row-major tiles covering an h x w LR image; every tile has the same (min(size, h), min(size, w))."""
    check_tile_params(size, overlap)
    if h < 1 or w < 1:
        raise InputError(f"cannot tile an empty {h}x{w} image")
    rows = plan_axis(h, size, overlap)
    cols = plan_axis(w, size, overlap)
    return [Tile(y, x, th, tw, cy0, cy1, cx0, cx1)
            for (y, th, cy0, cy1) in rows for (x, tw, cx0, cx1) in cols]


def check_tile_params(size, overlap) -> None:
    for name, v in (("tile size", size), ("tile overlap", overlap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{name} must be an int, got {v!r}")
    if size < 1:
        raise InputError(f"tile size must be >= 1 LR pixel, got {size}")
    if not 0 <= overlap < size:
        raise InputError(f"tile overlap must be in [0, size) = [0, {size}), got {overlap}: "
                         "use a smaller overlap or a larger tile")


def stitch(out: np.ndarray, tile: Tile, tile_out: np.ndarray, scale: int) -> None:
    """Copy the core of one tile's output (sh, sw, C) into the full output (sH, sW, C)."""
    s = scale
    oy, ox = (tile.cy0 - tile.y) * s, (tile.cx0 - tile.x) * s  # core offset inside the tile output
    hh, ww = (tile.cy1 - tile.cy0) * s, (tile.cx1 - tile.cx0) * s
    out[tile.cy0 * s: tile.cy1 * s, tile.cx0 * s: tile.cx1 * s] = tile_out[oy: oy + hh, ox: ox + ww]


def batch_size(tile_hw: tuple[int, int], channels: int, scale: int, max_batch: int,
               budget_bytes: int = DEFAULT_BATCH_BYTES) -> int:
    """Tiles per inference call: <= max_batch and the float32 output within budget_bytes (>= 1)."""
    th, tw = tile_hw
    per_tile = channels * th * tw * scale * scale * 4  # float32 output of one tile
    return max(1, min(int(max_batch), budget_bytes // max(per_tile, 1)))


def chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most n items."""
    for i in range(0, len(items), n):
        yield items[i: i + n]
