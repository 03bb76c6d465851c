"""Real product data: Fashion-MNIST and GroceryStoreDataset, plus the enhancer's degradation pipeline.

Everything here is numpy + pillow so it is cheap to import; torch Datasets are
thin wrappers built on top in the training code.

Fashion-MNIST search order: explicit `data_dir`, $SKUGEN_FMNIST_DIR,
/usr/share/datasets/fashion-mnist (Debian `dataset-fashion-mnist`), then the
official download when SKUGEN_ALLOW_DOWNLOAD=1 (never in tests).
GroceryStore search order: $SKUGEN_GROCERY_DIR, then ../shared/data/grocery-store.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import struct
import sys
import urllib.request
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from skugen import config
from skugen.errors import DataError, InputError

# ----------------------------------------------------------------------------- Fashion-MNIST

FMNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FMNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# name -> (idx magic, item count, item shape, sha256 of the DECOMPRESSED payload).
# We hash the decompressed bytes because Debian re-compresses the .gz files
# (different .gz md5 than upstream) while the payload is byte-identical.
FMNIST_FILES = {
    "train-images-idx3-ubyte": (2051, 60000, (28, 28), "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (2049, 60000, (), "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (2051, 10000, (28, 28), "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (2049, 10000, (), "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

_FMNIST_HINT = ("Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
                "SKUGEN_FMNIST_DIR / --data-dir at a folder with the four idx .gz files, or set "
                "SKUGEN_ALLOW_DOWNLOAD=1 to fetch it from the official source (checksum-verified).")


def fmnist_candidates(data_dir: str | os.PathLike | None = None) -> list[Path]:
    c = []
    if data_dir:
        c.append(Path(data_dir))
    if config.get("SKUGEN_FMNIST_DIR"):
        c.append(Path(config.get("SKUGEN_FMNIST_DIR")))
    c.append(FMNIST_DEBIAN_DIR)
    return c


def find_fmnist(data_dir: str | os.PathLike | None = None, allow_download: bool | None = None) -> Path:
    if data_dir is not None:  # an explicit folder is strict: silently using another copy would surprise
        missing = [n for n in FMNIST_FILES if not (Path(data_dir) / f"{n}.gz").is_file()]
        if not missing:
            return Path(data_dir)
        raise DataError(f"Fashion-MNIST: {data_dir} lacks {', '.join(m + '.gz' for m in missing)}. {_FMNIST_HINT}")
    for d in fmnist_candidates():
        if all((d / f"{n}.gz").is_file() for n in FMNIST_FILES):
            return d
    if allow_download is None:
        allow_download = config.get_bool("SKUGEN_ALLOW_DOWNLOAD")
    if allow_download:
        return download_fmnist(config.cache_dir("fashion-mnist"))
    tried = ", ".join(str(d) for d in fmnist_candidates(data_dir))
    raise DataError(f"Fashion-MNIST not found (looked in: {tried}). {_FMNIST_HINT}")


def download_fmnist(dest: Path) -> Path:
    """Fetch the four files from the official source; each is verified before it is kept."""
    dest.mkdir(parents=True, exist_ok=True)
    from skugen.io import atomic_write_bytes

    for name, (_, _, _, sha) in FMNIST_FILES.items():
        target = dest / f"{name}.gz"
        if target.is_file():
            continue
        url = FMNIST_URL + f"{name}.gz"
        print(f"downloading {url}", file=sys.stderr)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                blob = r.read()
        except OSError as e:
            raise DataError(f"Fashion-MNIST download failed ({e}). {_FMNIST_HINT}") from e
        if hashlib.sha256(gzip.decompress(blob)).hexdigest() != sha:
            raise DataError(f"downloaded {name}.gz fails its checksum; not kept. Try again or install the Debian package.")
        atomic_write_bytes(target, blob)
    return dest


def _read_idx(path: Path, magic: int, count: int, shape: tuple, sha: str, verify: bool) -> np.ndarray:
    try:
        raw = gzip.open(path, "rb").read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}). Re-install the dataset. {_FMNIST_HINT}") from e
    ndim = 1 + len(shape)
    hdr = 4 + 4 * ndim
    if len(raw) < hdr:
        raise DataError(f"{path}: truncated idx header. Re-install the dataset.")
    got_magic, *dims = struct.unpack(f">I{ndim}I", raw[:hdr])
    if got_magic != magic:
        raise DataError(f"{path}: idx magic {got_magic} != {magic}; this is not the expected Fashion-MNIST file.")
    if dims[0] != count or tuple(dims[1:]) != shape:
        raise DataError(f"{path}: header says {dims}, expected {[count, *shape]}. Re-install the dataset.")
    if len(raw) != hdr + count * int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{path}: payload has {len(raw) - hdr} bytes, expected {count * int(np.prod(shape))}. File truncated?")
    if verify and hashlib.sha256(raw).hexdigest() != sha:
        raise DataError(f"{path}: content checksum mismatch (sha256 of the decompressed payload). Re-install the dataset.")
    return np.frombuffer(raw, dtype=np.uint8, offset=hdr).reshape(count, *shape)


@lru_cache(maxsize=4)
def _load_fmnist_cached(root: str, split: str, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    pre = "train" if split == "train" else "t10k"
    xi = FMNIST_FILES[f"{pre}-images-idx3-ubyte"]
    yi = FMNIST_FILES[f"{pre}-labels-idx1-ubyte"]
    x = _read_idx(Path(root) / f"{pre}-images-idx3-ubyte.gz", *xi, verify=verify)
    y = _read_idx(Path(root) / f"{pre}-labels-idx1-ubyte.gz", *yi, verify=verify)
    if y.max() >= len(FMNIST_CLASSES):
        raise DataError(f"Fashion-MNIST {split} labels out of range (max {y.max()}).")
    return x, y


def load_fmnist(split: str = "train", data_dir=None, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return (images (N, 28, 28) uint8, labels (N,) uint8) for split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise InputError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}.")
    return _load_fmnist_cached(str(find_fmnist(data_dir)), split, verify)


def fmnist_to_model(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 32, 32) float32 in [-1, 1], zero(-1)-padded by 2 px (the cGAN's space)."""
    x = x.astype(np.float32) / 127.5 - 1.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)[:, None]

# ----------------------------------------------------------------------------- GroceryStore

GROCERY_SPLITS = {"train": 2640, "val": 296, "test": 2485}
_GROCERY_HINT = ("Set SKUGEN_GROCERY_DIR to a clone of the GroceryStoreDataset repository "
                 "(the folder that contains dataset/), or place it at ../shared/data/grocery-store.")


@dataclass(frozen=True)
class GroceryClass:
    name: str
    class_id: int
    coarse_name: str
    coarse_id: int
    iconic_path: Path
    description_path: Path

    @property
    def description(self) -> str:
        return self.description_path.read_text(encoding="utf-8", errors="replace").strip()


def grocery_candidates() -> list[Path]:
    c = []
    if config.get("SKUGEN_GROCERY_DIR"):
        c.append(Path(config.get("SKUGEN_GROCERY_DIR")))
    c.append(config.REPO_ROOT.parent / "shared" / "data" / "grocery-store")
    return c


def find_grocery() -> Path:
    for d in grocery_candidates():
        if (d / "dataset" / "classes.csv").is_file():
            return d
    tried = ", ".join(str(d) for d in grocery_candidates())
    raise DataError(f"GroceryStoreDataset not found (looked in: {tried}). {_GROCERY_HINT}")


def grocery_classes(root: Path | None = None) -> list[GroceryClass]:
    ds = (root or find_grocery()) / "dataset"
    out = []
    with open(ds / "classes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for r in rows[1:]:
        if not r:
            continue
        name, cid, coarse, coid, iconic, desc = (s.strip() for s in r[:6])
        out.append(GroceryClass(name, int(cid), coarse, int(coid), ds / iconic.lstrip("/"), ds / desc.lstrip("/")))
    return out


def grocery_split(split: str, root: Path | None = None) -> list[tuple[Path, int, int]]:
    """[(image path, fine class id, coarse class id)] for 'train' | 'val' | 'test'."""
    if split not in GROCERY_SPLITS:
        raise InputError(f"GroceryStore split must be one of {sorted(GROCERY_SPLITS)}, got {split!r}.")
    ds = (root or find_grocery()) / "dataset"
    f = ds / f"{split}.txt"
    if not f.is_file():
        raise DataError(f"GroceryStore split file {f} missing. {_GROCERY_HINT}")
    items = []
    for line in f.read_text().splitlines():
        if line.strip():
            p, fine, coarse = (s.strip() for s in line.split(","))
            items.append((ds / p, int(fine), int(coarse)))
    return items


def grocery_iconic(root: Path | None = None) -> list[Path]:
    return [c.iconic_path for c in grocery_classes(root)]


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8. Raises DataError for unreadable files."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e

# ----------------------------------------------------------------------------- degradations


@dataclass(frozen=True)
class DegradeConfig:
    """Real-world degradation for the x2 enhancer (a light Real-ESRGAN-style first-order chain).

    Applied to a clean HR crop, in order: blur -> bicubic x1/scale -> noise -> JPEG. With probability
    `clean_prob` the crop is only bicubic-downscaled instead: an already clean photo, which the enhancer must not
    make worse (trained without them, grocery-sr2x v2 was 0.20 dB BELOW bicubic on clean input).
    """
    scale: int = 2                               # the enhancer's upscale factor
    blur_sigma: tuple[float, float] = (0.2, 1.2)  # Gaussian blur sigma range (px, HR space): camera/lens softness
    gauss_sigma: tuple[float, float] = (0.0, 8.0)  # additive Gaussian noise std range (0..255 scale): sensor read noise
    poisson_prob: float = 0.3                     # chance of shot noise instead of Gaussian: low-light photos
    poisson_scale: tuple[float, float] = (0.05, 0.5)  # shot noise: photons per grey level / 10, so SMALLER is noisier
                                                      # (0.05 at mid-grey: std ~16/255; 0.5: ~5/255)
    jpeg_quality: tuple[int, int] = (40, 95)      # JPEG re-compression range: marketplace uploads
    clean_prob: float = 0.0                       # chance of no degradation at all (0: no RNG draw, streams unchanged)


# What the enhancer is trained and distilled on: the evaluation chain plus 10% clean samples (grocery-sr2x v3).
TRAIN_DEGRADE = DegradeConfig(clean_prob=0.1)
# No degradation at all: a clean photo, plainly bicubic-downscaled (evaluation of "does it harm clean input").
CLEAN_DEGRADE = DegradeConfig(clean_prob=1.0)


def degrade(hr: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig | None = None) -> np.ndarray:
    """(H, W, 3) uint8 clean HR -> (H/scale, W/scale, 3) uint8 degraded LR. Deterministic given rng."""
    cfg = cfg or DegradeConfig()
    if hr.ndim != 3 or hr.shape[2] != 3 or hr.dtype != np.uint8:
        raise InputError(f"degrade expects (H, W, 3) uint8, got {hr.shape} {hr.dtype}.")
    h, w = hr.shape[:2]
    if h % cfg.scale or w % cfg.scale:
        raise InputError(f"HR size {w}x{h} must be divisible by scale {cfg.scale}.")
    im = Image.fromarray(hr)
    if cfg.clean_prob > 0 and rng.random() < cfg.clean_prob:
        return np.asarray(im.resize((w // cfg.scale, h // cfg.scale), Image.BICUBIC))
    sigma = rng.uniform(*cfg.blur_sigma)
    if sigma > 0.25:
        im = im.filter(ImageFilter.GaussianBlur(radius=float(sigma)))
    im = im.resize((w // cfg.scale, h // cfg.scale), Image.BICUBIC)
    x = np.asarray(im).astype(np.float32)
    if rng.random() < cfg.poisson_prob:
        s = rng.uniform(*cfg.poisson_scale)
        x = rng.poisson(np.clip(x, 0, 255) * s * 10).astype(np.float32) / (s * 10)
    else:
        x = x + rng.normal(0.0, rng.uniform(*cfg.gauss_sigma), x.shape).astype(np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    buf.seek(0)
    with Image.open(buf) as j:
        return np.asarray(j.convert("RGB"))


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        raise InputError(f"image {w}x{h} smaller than crop {size}.")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return img[y:y + size, x:x + size]


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip / 90-degree rotation (dihedral group): products have no canonical orientation."""
    k = int(rng.integers(0, 4))
    img = np.rot90(img, k)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def sr_pairs(paths: list[Path], n: int, hr_size: int, seed: int, cfg: DegradeConfig | None = None,
             aug: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """n (LR, HR) uint8 crop pairs drawn from `paths`, deterministic in `seed`. LR (n, s/2, s/2, 3), HR (n, s, s, 3)."""
    cfg = cfg or DegradeConfig()
    rng = np.random.default_rng(seed)
    lr = np.empty((n, hr_size // cfg.scale, hr_size // cfg.scale, 3), np.uint8)
    hr = np.empty((n, hr_size, hr_size, 3), np.uint8)
    cache: dict[Path, np.ndarray] = {}
    for i in range(n):
        p = paths[int(rng.integers(0, len(paths)))]
        if p not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[p] = load_rgb(p)
        c = random_crop(cache[p], hr_size, rng)
        if aug:
            c = augment(c, rng)
        hr[i] = c
        lr[i] = degrade(c, rng, cfg)
    return lr, hr


def sr_eval_set(which: str, n: int, hr_size: int = 128, seed: int = 1234,
                cfg: DegradeConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed evaluation set: 'test' / 'val' (GroceryStore split photos) or 'iconic' (81 white-background shots).

    'val' is for training curves only (never reported as a result); 'test' and 'iconic' are the reported sets.
    'test'/'val': one centre crop of `hr_size` px per photo. 'iconic': each WHOLE image at its native resolution
    (198x198 in this dataset), mod-cropped to the scale as BasicSR does; `hr_size` does not apply. Until
    session 3 the iconic shots were first bicubic-UPSCALED to 384 px (a comment took them for large studio
    images), so their "ground truth" was itself an interpolated image.
    Degraded with a fixed seed, so numbers are comparable across runs; `cfg` swaps the degradation (e.g.
    CLEAN_DEGRADE: the same photos plainly downscaled, to check the enhancer does not make clean input worse).
    """
    scale = (cfg or DegradeConfig()).scale
    if which in ("test", "val"):
        paths = [p for p, _, _ in grocery_split(which)]
        rng = np.random.default_rng(seed)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False))]
        imgs = [load_rgb(p) for p in paths]
        size = (hr_size, hr_size)
        smallest = min(min(im.shape[:2]) for im in imgs)
        if hr_size > smallest or hr_size % scale:
            raise InputError(f"SR eval crops of {hr_size} px do not fit: the {which} photos are at least {smallest} px "
                             f"and crops must be a multiple of the scale {scale}. Use a smaller crop (e.g. "
                             f"`skugen bench --tile {smallest // scale // 2 * 2}` or less for an x{scale} enhancer).")
    elif which == "iconic":
        imgs = [load_rgb(p) for p in grocery_iconic()[:n]]
        size = tuple(min(im.shape[i] for im in imgs) // scale * scale for i in (0, 1))  # one stackable size
    else:
        raise InputError(f"SR eval set must be 'test', 'val' or 'iconic', got {which!r}.")
    rng = np.random.default_rng(seed)
    lr, hr = [], []
    for img in imgs:
        h, w = img.shape[:2]
        y, x = (h - size[0]) // 2, (w - size[1]) // 2
        c = np.ascontiguousarray(img[y:y + size[0], x:x + size[1]])
        hr.append(c)
        lr.append(degrade(c, rng, cfg))
    return np.stack(lr), np.stack(hr)

# ----------------------------------------------------------------------------- check


# What each dataset is for, so a report about a missing one says what the user loses (and what still works).
DATASET_USES = {
    "fashion-mnist": ("the fmnist models: `make demo`, `skugen pipeline/train/compress/export/eval/bench` on "
                      "fmnist-cgan, fmnist-cgan-student, fmnist-classifier (FID-proxy and class fidelity)"),
    "grocery-store": ("the enhancer: `skugen pipeline/train/compress/export/eval/bench` on grocery-sr2x and "
                      "grocery-sr2x-student, and INT8 calibration/eval of any enhancer bundle"),
}
# Names accepted by check_data(require=...) (and `skugen data check --require`).
DATASET_ALIASES = {"fmnist": "fashion-mnist", "fashion-mnist": "fashion-mnist",
                   "grocery": "grocery-store", "grocery-store": "grocery-store"}


@dataclass
class DatasetStatus:
    name: str
    found: bool
    path: str | None = None
    counts: dict = field(default_factory=dict)
    verified: bool = False
    error: str | None = None
    extra: dict = field(default_factory=dict)
    needed_by: str = ""

    @property
    def usable(self) -> bool:
        return self.found and self.verified

    @property
    def state(self) -> str:
        return "OK" if self.usable else "MISSING" if not self.found else "BAD"


def check_fmnist(data_dir=None) -> DatasetStatus:
    st = DatasetStatus("fashion-mnist", False, needed_by=DATASET_USES["fashion-mnist"])
    try:
        root = find_fmnist(data_dir, allow_download=False)
        st.found, st.path = True, str(root)
        for split in ("train", "test"):
            _load_fmnist_cached.cache_clear()
            x, y = load_fmnist(split, root, verify=True)
            st.counts[split] = int(len(x))
            st.extra[f"{split}_per_class"] = np.bincount(y, minlength=10).tolist()
        st.verified = True
        st.extra["classes"] = list(FMNIST_CLASSES)
    except DataError as e:
        st.error = str(e)
    return st


def check_grocery() -> DatasetStatus:
    st = DatasetStatus("grocery-store", False, needed_by=DATASET_USES["grocery-store"])
    try:
        root = find_grocery()
        st.found, st.path = True, str(root)
        classes = grocery_classes(root)
        ok = True
        for split, expected in GROCERY_SPLITS.items():
            items = grocery_split(split, root)
            st.counts[split] = len(items)
            missing = [p for p, _, _ in items if not p.is_file()]
            if missing or len(items) != expected:
                ok = False
                st.error = f"{split}: {len(items)} listed (expected {expected}), {len(missing)} files missing"
        icon_missing = [c.name for c in classes if not c.iconic_path.is_file() or not c.description_path.is_file()]
        st.counts["iconic"] = len(classes) - len(icon_missing)
        st.extra["fine_classes"] = len(classes)
        st.extra["coarse_classes"] = len({c.coarse_id for c in classes})
        if icon_missing or len(classes) != 81:
            ok = False
            st.error = f"iconic images/descriptions missing for {icon_missing[:5]}"
        st.verified = ok
    except DataError as e:
        st.error = str(e)
    return st


@dataclass
class DataReport:
    """`check_data`'s answer: every dataset's status, and whether what was asked for is usable."""

    datasets: list[DatasetStatus]
    required: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """The required datasets are all usable; with none required, at least one dataset is."""
        by_name = {d.name: d for d in self.datasets}
        if self.required:
            return all(by_name[r].usable for r in self.required)
        return any(d.usable for d in self.datasets)

    @property
    def problems(self) -> list[DatasetStatus]:
        """The datasets that make `ok` false (required ones not usable; all, when none is usable)."""
        if self.ok:
            return []
        return [d for d in self.datasets if not d.usable and (not self.required or d.name in self.required)]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "required": list(self.required),
                "datasets": {d.name: {**asdict(d), "state": d.state} for d in self.datasets}}

    def format(self) -> str:
        lines = []
        for d in self.datasets:
            need = " (required)" if d.name in self.required else ""
            lines.append(f"{d.name:14s} {d.state:8s} {d.path or ''}{need}")
            if d.counts:
                lines.append("    counts: " + ", ".join(f"{k}={v}" for k, v in d.counts.items())
                             + f"  verified={d.verified}")
            if d.error:
                lines.append(f"    {d.error}")
            if not d.usable:
                lines.append(f"    without it you cannot run: {d.needed_by}")
        if not self.ok:
            names = ", ".join(d.name for d in self.problems)
            lines.append(f"not usable: {names}. Install it as described above (see README, 'Real data only').")
        return "\n".join(lines)


def check_data(require: tuple[str, ...] | list[str] = (), data_dir=None) -> DataReport:
    """Locate and verify both datasets. `require` names those the caller needs ('fmnist', 'grocery', ...).

    Never raises for a missing dataset: the report says what is present, what is missing and what each
    one is needed for; `report.ok` says whether the required ones (or, with none required, any) are usable.
    """
    req = []
    for r in require:
        if r not in DATASET_ALIASES:
            raise InputError(f"unknown dataset {r!r}; choose from {sorted(DATASET_ALIASES)}.")
        if DATASET_ALIASES[r] not in req:
            req.append(DATASET_ALIASES[r])
    return DataReport([check_fmnist(data_dir), check_grocery()], tuple(req))


# ----------------------------------------------------------------------------- held-out sets for quality gates


@dataclass(frozen=True)
class EvalSet:
    """Held-out inputs for the quality gate (never the calibration samples)."""

    feeds: dict                       # model inputs, each (N, ...) float32
    hr: np.ndarray | None = None      # enhancer: ground-truth HR (N, 2h, 2w, 3) uint8
    labels: np.ndarray | None = None  # generator: class ids (N,); derived from feeds["onehot"] when None
    source: str = ""                  # where the samples come from (for the report)
