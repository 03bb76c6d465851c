"""Shared fixtures for the kernel tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

GROCERY = Path(os.environ.get("SKUGEN_GROCERY_DIR") or Path(__file__).resolve().parents[3] / "shared/data/grocery-store")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real product photo (H, W, 3) uint8 from GroceryStoreDataset's test split, if present."""
    PIL = pytest.importorskip("PIL.Image")
    files = sorted((GROCERY / "dataset" / "test").rglob("*.jpg"))[:1]
    if not files:
        pytest.skip(f"GroceryStoreDataset not found under {GROCERY}")
    with PIL.open(files[0]) as im:
        return np.asarray(im.convert("RGB"))
