"""Pre/post-processing for the pipeline: user inputs -> model tensors -> uint8 images.

A thin adapter over `skugen.kernels` (numpy reference on CPU, CUDA kernels on a
GPU) plus everything that turns "what a user passes" into validated arrays:
labels (ints or class names), latents, seeds (those three in skugen.gen_inputs,
re-exported here), and images (arrays, PIL images, files). Every user mistake
becomes an InputError that says how to fix it; never a raw numpy / Pillow traceback.

Pillow is imported lazily (decode/encode only), so generating from a bundle
never pays its import time.
"""
from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError
# Labels, seeds and latents live in skugen.gen_inputs (numpy only; export-triton ships a copy of it to the
# Triton Python-backend models); re-exported here because prepost is the pipeline's one pre/post module.
from .gen_inputs import (  # noqa: F401
    MAX_IMAGES_PER_CALL, MAX_SEED, _norm_name, check_count, check_latents, check_seed, class_aliases, fresh_seed,
    make_latents, onehot, resolve_labels, seed_latents)

# ----------------------------------------------------------------------------- processors


def get_processor(device: str = "cpu"):
    """The kernels' processor for a model running on `device` ('cpu' or 'gpu').

    A CPU model gets the numpy reference (uploading to a GPU and back would only
    add copies); a GPU model gets the CUDA kernels when pycuda + nvcc work,
    else the numpy reference (its `fallback_reason` says why; the reason is logged).
    """
    from skugen.kernels.reference import NumpyProcessor

    if device != "gpu":
        return NumpyProcessor()
    try:
        from skugen.kernels import get_processor as _kernels_processor
    except Exception as e:  # noqa: BLE001 - kernels without a launcher, or a launcher that fails to import
        import logging

        logging.getLogger("skugen").warning("CUDA kernels unavailable, using numpy: %s", e)
        return NumpyProcessor(fallback_reason=f"skugen.kernels.get_processor unavailable: {e}")
    return _kernels_processor("auto")


def gpu_data_path(runner, processor, kind: str):
    """The zero-copy GPU path (skugen.backends.tensorrt.zerocopy) when the runner is TensorRT and the processor
    is the CUDA one, else None (the numpy path below). Never raises: a failure logs why and keeps numpy."""
    try:
        from skugen.backends.tensorrt import zerocopy
    except ImportError:
        return None
    if not zerocopy.usable(runner, processor):
        return None
    try:
        return zerocopy.ZeroCopyPath(runner, processor, kind)
    except Exception as e:  # noqa: BLE001 - e.g. out of GPU memory for the staging buffers: numpy still works
        import logging

        logging.getLogger("skugen").warning("zero-copy GPU path unavailable, using host copies: %s", e)
        return None


def images_to_unit_nchw(tiles: Sequence[np.ndarray], processor, mean=0.0, std=1.0) -> np.ndarray:
    """uint8 (h, w, 3) crops of one size -> (B, 3, h, w) float32 (x / 255 - mean) / std.

    mean, std: one number or one per channel (the kernels' convention).

    On the numpy processor this skips the identity bilinear resize of the
    reference: with in size == out size every tap weight is exactly 1 or 0, so the
    reference reduces to `v * scale + offset` with the same float32 constants, and
    this gives bit-identical values at a quarter of the memory traffic.
    """
    h, w = tiles[0].shape[:2]
    if getattr(processor, "device", "cpu") != "cpu":
        return processor.preprocess(list(tiles), (h, w), layout="RGB", mean=mean, std=std)
    from skugen.kernels import _spec

    p = _spec.preprocess_params(_spec.LAYOUTS["RGB"], mean, std, 3)
    out = np.empty((len(tiles), 3, h, w), dtype=np.float32)  # (B, C, h, w)
    for i, t in enumerate(tiles):
        chw = t.transpose(2, 0, 1)  # (3, h, w) uint8 view
        for c in range(3):
            np.multiply(chw[c], p.scale[c], out=out[i, c], dtype=np.float32)
            if p.offset[c] != 0:
                out[i, c] += p.offset[c]
    return out


@functools.lru_cache(maxsize=16)
def _post_scale(value_range) -> tuple[np.float32, np.float32]:
    from skugen.kernels import _spec

    return _spec.value_range_params(value_range)


def nchw_to_images(x: np.ndarray, value_range, processor) -> np.ndarray:
    """(B, C, H, W) float model output (C = 1 or 3, RGB planes) -> (B, H, W, C) uint8.

    On the numpy processor this is the reference postprocess in fewer passes and with
    bit-identical results: v = x * scale + offset (float32), then fmax(v, 0) (which also
    maps NaN to 0, as the reference does), fmin(v, 255), round half to even. It also
    reads strided views (tile crops) without a contiguous copy first.
    """
    b, c, h, w = x.shape
    if getattr(processor, "device", "cpu") != "cpu":
        u = processor.postprocess(np.ascontiguousarray(x), value_range, "GRAY" if c == 1 else "RGB")
        return u.reshape(b, h, w, c)
    scale, offset = _post_scale(value_range if isinstance(value_range, str) else tuple(value_range))
    v = np.multiply(x, scale, dtype=np.float32)  # (B, C, H, W) float32, a new buffer
    v += offset
    np.fmax(v, np.float32(0), out=v)
    np.fmin(v, np.float32(255), out=v)
    np.rint(v, out=v)
    u = v.astype(np.uint8)
    if c == 1:
        return u.reshape(b, h, w, 1)
    return np.ascontiguousarray(u.transpose(0, 2, 3, 1))  # (B, H, W, 3)

# ----------------------------------------------------------------------------- images in


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "mode")


_GRAY_HINT = ("convert it to RGB first: np.repeat(img[..., None], 3, axis=-1) for an (H, W) array "
              "(np.repeat(img, 3, axis=-1) for (H, W, 1)), or PIL.Image.fromarray(img).convert('RGB')")


def check_rgb_array(img: Any, what: str) -> np.ndarray:
    """One (H, W, 3) uint8 image, validated; pixels repacked if a view's strides are unusual."""
    if img.dtype != np.uint8:
        if img.dtype.kind == "f":
            hint = "for floats in [0, 1] pass np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)"
        elif img.dtype == np.uint16:
            hint = "for 16-bit images pass (img >> 8).astype(np.uint8)"
        else:
            hint = "convert with img.astype(np.uint8) if the values are already 0..255"
        raise InputError(f"{what} must be uint8 (0..255), got dtype {img.dtype}: {hint}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 1):
        raise InputError(f"{what} is grayscale (shape {img.shape}) but this model needs RGB (H, W, 3): {_GRAY_HINT}")
    if img.ndim != 3:
        raise InputError(f"{what} must be an (H, W, 3) RGB image, got shape {img.shape}")
    if img.shape[-1] == 4:
        raise InputError(f"{what} has 4 channels (RGBA, shape {img.shape}); drop alpha with img[..., :3]")
    if img.shape[-1] != 3:
        hint = " It looks channels-first: pass img.transpose(1, 2, 0)." if img.shape[0] in (1, 3) else ""
        raise InputError(f"{what} must have 3 channels last (H, W, 3), got shape {img.shape}.{hint}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"{what} is empty (shape {img.shape}): every image needs at least 1x1 pixels")
    s = img.strides
    if s[2] != 1 or s[1] != 3 or s[0] < 0:  # flips / channel slices: the kernels want packed pixels
        img = np.ascontiguousarray(img)
    return img


def check_image_file(path: str | os.PathLike, *, read_header: bool = False) -> Path:
    """InputError unless `path` is an existing file (and, with read_header, one Pillow recognises and whose
    structure checks out: Image.verify, without decoding the pixels). What a command checks for every input
    before it writes its first output."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"image file {p} does not exist")
    if not p.is_file():
        raise InputError(f"{p} is not a file; pass an image file (PNG, JPEG, WebP, ...)")
    if read_header:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(p) as im:
                im.verify()
        except UnidentifiedImageError:
            raise InputError(f"{p} is not an image Pillow can read: pass a PNG, JPEG, WebP, BMP or TIFF file") from None
        except Exception as e:  # noqa: BLE001 - as decode_image: Pillow's many errors on bad data
            raise InputError(f"{p} is truncated or corrupt ({type(e).__name__}: {e}); re-copy or re-export the "
                             "image") from None
    return p


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (EXIF orientation applied; 16-bit/float grey scaled, transparency on
    white: see _pil_rgb8)."""
    p = check_image_file(path)
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()  # decode now: a truncated file fails here, inside the try
            im = ImageOps.exif_transpose(im) or im
            return _pil_rgb8(im, str(p))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{p} is not an image Pillow can read: pass a PNG, JPEG, WebP, BMP or TIFF file") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{p} is too large for Pillow's safety limit ({e}); raise PIL.Image.MAX_IMAGE_PIXELS "
                         "if you trust the file") from None
    except MemoryError:
        raise InputError(f"{p} is too large to decode in memory; resize it first") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError/SyntaxError/struct.error/zlib.error... on bad data
        raise InputError(f"{p} is truncated or corrupt ({type(e).__name__}: {e}); re-copy or re-export the "
                         "image") from None


def _pil_rgb8(im: Any, what: str) -> np.ndarray:
    """A decoded PIL image -> (H, W, 3) uint8 RGB, keeping what Pillow's convert("RGB") would lose.

    convert("RGB") CLIPS 16-bit and float grey at 255 (a 16-bit ramp came out 99.6% white) and turns transparent
    pixels black. Here: 16-bit grey is scaled by 255/65535, float grey in [0, 1] by 255 (in [0, 255]: kept), other
    ranges are refused; transparency is composited onto white, the background of product cut-outs.
    """
    from PIL import Image

    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif mode != "F" and hi > 255.0 and lo >= 0.0 and hi <= 65535.0:
            a = a * (255.0 / 65535.0)
        elif not (lo >= 0.0 and hi <= 255.0):
            raise InputError(f"{what}: a {mode} image with values in [{lo:g}, {hi:g}]; skugen reads 8-bit, 16-bit "
                             "or [0, 1] float images. Rescale it to 8-bit first.")
        g = np.rint(a).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def pil_to_array(im: Any, what: str) -> np.ndarray:
    from PIL import ImageOps

    try:
        im.load()
        im = ImageOps.exif_transpose(im) or im  # as for files: the same photo comes out the same way up
        return _pil_rgb8(im, what)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decode/convert failure of the user's image
        raise InputError(f"{what}: Pillow cannot decode or convert this {getattr(im, 'mode', '?')} image to RGB "
                         f"({type(e).__name__}: {e})") from None


def as_rgb_images(images: Any) -> tuple[list[np.ndarray], list[str | None]]:
    """User images -> ([(H, W, 3) uint8, ...], [source name or None, ...]).

    Accepts one (H, W, 3) array, a (B, H, W, 3) batch, a PIL image, a file path,
    or a list/tuple mixing those. Arrays must already be RGB uint8 (we will not
    guess how to map gray or alpha); PIL images and files are converted to RGB,
    since Pillow knows their mode.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("images is an empty list: pass at least one image (array, PIL image or file path)")
        items = list(images)
        single_batch = False
    else:
        items = [images]
        single_batch = True
    arrays: list[np.ndarray] = []
    names: list[str | None] = []
    for i, x in enumerate(items):
        what = "image" if single_batch else f"images[{i}]"
        if isinstance(x, np.ndarray):
            if x.ndim == 4:  # (B, H, W, 3) batch
                if x.shape[0] == 0:
                    raise InputError(f"{what} is an empty batch (shape {x.shape}): pass at least one image")
                for j in range(x.shape[0]):
                    arrays.append(check_rgb_array(x[j], f"{what}[{j}]"))
                    names.append(None)
                continue
            arrays.append(check_rgb_array(x, what))
            names.append(None)
        elif isinstance(x, (str, os.PathLike)):
            arrays.append(decode_image(x))
            names.append(Path(x).stem)
        elif _is_pil(x):
            arrays.append(pil_to_array(x, what))
            names.append(None)
        else:
            raise InputError(f"{what} must be a uint8 (H, W, 3) numpy array, a PIL image or a file path; "
                             f"got {type(x).__name__}")
        if len(arrays) > MAX_IMAGES_PER_CALL:
            check_count(len(arrays), "number of images")
    return arrays, names

# ----------------------------------------------------------------------------- images out


def encode_png(image: np.ndarray, text: dict[str, str]) -> bytes:
    """(H, W, 1|3) uint8 -> PNG bytes with tEXt chunks (latin-1 keys/values, as PNG requires)."""
    from PIL import Image, PngImagePlugin

    arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    im = Image.fromarray(np.ascontiguousarray(arr), mode=None)
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(str(k), str(v))
    buf = io.BytesIO()
    im.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def make_grid(images: Sequence[np.ndarray], cols: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile (H, W, C) uint8 images into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image.

    Images of different sizes are placed in cells of the largest size, top-left aligned.
    """
    if not len(images):
        raise InputError("no images to put in a grid")
    n = len(images)
    if cols is not None and (int(cols) != cols or cols < 1):
        raise InputError(f"cols must be an integer >= 1 (or None for a square-ish grid), got {cols!r}")
    cols = int(cols) if cols else int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    c = images[0].shape[2]
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for k, im in enumerate(images):
        r, q = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y: y + im.shape[0], x: x + im.shape[1]] = im
    return grid
