"""Bad input gets a precise SkugenError with a fix hint, never a raw numpy / Pillow / ORT traceback.

Explicit cases assert on the message; two hypothesis tests fire 1,100 random malformed calls
(generate 700 + enhance 400) and allow only SkugenError subclasses (or a valid Result).
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import skugen
from skugen.bundle import MANIFEST, MANIFEST_DIGEST
from skugen.errors import BundleError, InputError, IntegrityError, SkugenError
from skugen.io import sha256_bytes


# Everything below runs on both CPU engines: what ONNX Runtime refuses, OpenVINO refuses with the same error.
ENGINES = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="openvino not installed (skugen[openvino])"))]


@pytest.fixture(scope="module", params=ENGINES)
def gen(cgan_bundle, request):
    with skugen.load(cgan_bundle, backend=request.param, threads=1) as p:
        assert p.backend == request.param
        yield p


@pytest.fixture(scope="module", params=ENGINES)
def enh(sr_bundle, request):
    with skugen.load(sr_bundle, backend=request.param, threads=1) as p:
        assert p.backend == request.param
        yield p

# ----------------------------------------------------------------------------- generate


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=["hat"]), r"unknown class 'hat'\. Valid classes: 0=.*9="),
    (dict(labels=[10]), r"label 10 is out of range: this model has classes 0\.\.9"),
    (dict(labels=-1, n=2), r"label -1 is out of range"),
    (dict(labels=[]), r"labels is empty"),
    (dict(n=0), r"n must be >= 1"),
    (dict(n=-3), r"n must be >= 1"),
    (dict(n=2.0), r"n must be a positive int"),
    (dict(n=True), r"n must be a positive int"),
    (dict(n=10**9), r"split the job"),
    (dict(), r"pass labels=\[\.\.\.\]"),
    (dict(labels=[1, 2, 3], n=2), r"got 3 labels but n=2"),
    (dict(labels=[1.0]), r"label 1\.0 is a float; pass int"),
    (dict(labels=[[1, 2]]), r"each label must be a class index"),
    (dict(labels={"a": 1}), r"labels must be an int, a class name, or a list"),
    (dict(labels=np.zeros((2, 2), int)), r"labels must be 1-D"),
    (dict(labels=0, n=1, seed=-1), r"seed must be in \[0, 2\*\*128\)"),
    (dict(labels=0, n=1, seed=1.5), r"seed must be a non-negative int"),
    (dict(labels=0, n=1, seed="7"), r"seed must be a non-negative int"),
])
def test_generate_bad_arguments(gen, kwargs, match):
    with pytest.raises(InputError, match=match):
        gen.generate(**kwargs)


def test_bad_latents(gen):
    zd = gen.spec.z_dim
    good = np.zeros((2, zd), np.float32)
    cases = [
        (good.astype(np.int32), r"latents must be float .*standard_normal"),
        (good.astype(np.complex64), r"latents must be float"),
        (np.zeros((2, zd + 1), np.float32), rf"latents must have shape \(n, {zd}\), got \(2, {zd + 1}\)"),
        (np.zeros((2, zd, 1), np.float32), r"latents must have shape"),
        (np.zeros((0, zd), np.float32), r"latents\.shape\[0\] must be >= 1"),
        (np.where(np.eye(2, zd) > 0, np.nan, 0).astype(np.float32), r"2 NaN/inf value\(s\)"),
        (np.full((1, zd), np.inf, np.float32), r"NaN/inf"),
        ("zeros", r"latents must be a numpy array"),
        ([[1, 2], [3]], r"converting the list failed"),
    ]
    for z, match in cases:
        with pytest.raises(InputError, match=match):
            gen.generate(labels=0, latents=z)
    with pytest.raises(InputError, match="either seed= or latents="):
        gen.generate(labels=0, latents=good, seed=1)
    with pytest.raises(InputError, match="n=3 but latents has 2 rows"):
        gen.generate(labels=0, latents=good, n=3)
    # Users win: float64 latents (np.random's default) are accepted and cast.
    assert gen.generate(labels=0, latents=good.astype(np.float64)).images.shape[0] == 2

# ----------------------------------------------------------------------------- enhance


@pytest.mark.parametrize("image, match", [
    (np.zeros((8, 8), np.uint8), r"grayscale \(shape \(8, 8\)\) but this model needs RGB.*np\.repeat.*convert\('RGB'\)"),
    (np.zeros((8, 8, 1), np.uint8), r"grayscale.*np\.repeat"),
    (np.zeros((8, 8, 4), np.uint8), r"RGBA.*img\[\.\.\., :3\]"),
    (np.zeros((3, 8, 8), np.uint8), r"channels-first: pass img\.transpose\(1, 2, 0\)"),
    (np.zeros((8, 8, 3), np.float32), r"must be uint8.*np\.clip\(np\.rint\(img \* 255\)"),
    (np.zeros((8, 8, 3), np.uint16), r"img >> 8"),
    (np.zeros((0, 8, 3), np.uint8), r"is empty"),
    (np.zeros((0, 8, 8, 3), np.uint8), r"empty batch"),
    (np.zeros((1, 1, 8, 8, 3), np.uint8), r"must be an \(H, W, 3\) RGB image"),
    ([], r"empty list"),
    (b"\x89PNG", r"must be a uint8 \(H, W, 3\) numpy array, a PIL image or a file path; got bytes"),
    (42, r"got int"),
    ("/nonexistent/photo.jpg", r"does not exist"),
])
def test_enhance_bad_images(enh, image, match):
    with pytest.raises(InputError, match=match):
        enh.enhance(image)


def test_enhance_bad_files(enh, tmp_path):
    from PIL import Image

    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.txt is not an image Pillow can read"):
        enh.enhance(str(txt))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    trunc = tmp_path / "cut.png"
    trunc.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.png is truncated or corrupt"):
        enh.enhance([trunc])
    with pytest.raises(InputError, match="is not a file"):
        enh.enhance(tmp_path)
    # A grayscale *file* is converted (Pillow knows its mode): users expect their photo to work.
    g = tmp_path / "gray.png"
    Image.fromarray(np.full((6, 5), 128, np.uint8)).save(g)
    assert enh.enhance(g).images.shape == (1, 12, 10, 3)


def test_enhance_bad_tile(enh):
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InputError, match="tile must be True, False or a tile size"):
        enh.enhance(img, tile="big")
    with pytest.raises(InputError, match="tile size must be >= 1"):
        enh.enhance(img, tile=0)

# ----------------------------------------------------------------------------- bundles and load


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_manifest(b: Path, edit) -> None:
    m = json.loads((b / MANIFEST).read_text())
    edit(m)
    raw = (json.dumps(m, indent=2) + "\n").encode()
    (b / MANIFEST).write_bytes(raw)
    (b / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")


def test_missing_and_corrupted_bundles(cgan_bundle, tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        skugen.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="no manifest.json"):
        skugen.load(cgan_bundle / "golden")
    bad = _copy(cgan_bundle, tmp_path / "flip")
    model = bad / "model.fp32.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.fp32\.onnx fails its sha256 check"):
        skugen.load(bad)
    m = _copy(cgan_bundle, tmp_path / "man")
    (m / MANIFEST).write_text("{ not json")
    with pytest.raises(IntegrityError, match="altered or corrupted"):
        skugen.load(m)
    f = tmp_path / "file.bin"
    f.write_bytes(b"xx")
    with pytest.raises(BundleError, match="not a bundle .tar"):
        skugen.load(f)
    with pytest.raises(InputError, match="bundle path must be a str or path"):
        skugen.load(None)


def test_newer_schema(cgan_bundle, tmp_path):
    b = _copy(cgan_bundle, tmp_path / "new")
    _rewrite_manifest(b, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match=r"schema_version 99 is newer.*Upgrade skugen"):
        skugen.load(b)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["io"].update(z_dim="big"), r"z_dim='big' must be a positive int"),
    (lambda m: m["io"].update(inputs=[{"name": "x"}]), r"lacks 'io.inputs\[0\].shape'.*re-export it"),
    (lambda m: m["io"].update(inputs=[{"name": "x", "shape": ["batch", 4]}]),
     r"generator inputs \('x',\) are not \(z, onehot\)"),
    (lambda m: m["io"].update(class_names=["a", "b"]), r"2 class names but n_classes=10"),
    (lambda m: m["io"].pop("outputs"), r"lacks 'io.outputs'"),
    (lambda m: m["io"].update(outputs={"name": "image"}), r"io.outputs=.* must be a list"),
    (lambda m: m["postprocess"].update(value_range=[1, -1]), r"value_range \[1.0, -1.0\] needs low < high.*re-export"),
    (lambda m: m["io"].update(max_batch=0), r"max_batch=0 must be a positive int"),
])
def test_malformed_manifest_fields(cgan_bundle, tmp_path, edit, match):
    b = _copy(cgan_bundle, tmp_path / "m")
    _rewrite_manifest(b, edit)
    with pytest.raises(BundleError, match=match):
        skugen.load(b)


@pytest.mark.parametrize("backend", ENGINES)
def test_model_that_does_not_match_its_manifest(cgan_bundle, sr_bundle, tmp_path, backend):
    """A bundle whose ONNX is another model's (consistent hashes, wrong graph) is refused at load."""
    from skugen.io import sha256_file

    b = _copy(cgan_bundle, tmp_path / "swap")
    shutil.copyfile(sr_bundle / "model.fp32.onnx", b / "model.fp32.onnx")

    def edit(m):
        h = sha256_file(b / "model.fp32.onnx")
        m["models"]["fp32"]["sha256"] = m["files"]["model.fp32.onnx"] = h
    _rewrite_manifest(b, edit)
    with pytest.raises(BundleError, match=r"model's inputs \['lr'\] do not match the manifest's"):
        skugen.load(b, backend=backend, precision="fp32")


@pytest.mark.parametrize("kwargs, match", [
    (dict(backend="gpu"), "backend must be one of"),
    (dict(precision="int4"), "precision must be one of"),
    (dict(threads=0), "threads must be a positive int"),
    (dict(threads="2"), "threads must be a positive int"),
    (dict(backend="openvino", precision="fp16"), r"fp16 is a TensorRT engine precision.*'bf16'"),
    (dict(backend="onnxruntime", precision="bf16"), r"'bf16' is an OpenVINO precision hint"),
])
def test_load_bad_options(cgan_bundle, kwargs, match):
    with pytest.raises(InputError, match=match):
        skugen.load(cgan_bundle, **kwargs)


def test_evaluate_bad_arguments(gen, enh, tmp_path):
    with pytest.raises(InputError, match="classifier=.*must be the path of an ONNX file"):
        gen.evaluate(n=4, classifier=tmp_path / "missing.onnx")
    with pytest.raises(InputError, match="neither a bundle directory"):
        gen.evaluate(n=4, reference=str(tmp_path))
    with pytest.raises(InputError, match="evaluate\\(\\) needs reference="):
        enh.evaluate()
    with pytest.raises(InputError, match="1 inputs but 2 references"):
        enh.evaluate(reference=[np.zeros((8, 8, 3), np.uint8)] * 2, inputs=[np.zeros((4, 4, 3), np.uint8)])

# ----------------------------------------------------------------------------- property tests

_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=12),
    st.binary(max_size=8), st.just(object()), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_label = st.one_of(
    st.integers(-3, 13), st.sampled_from(["sneaker", "Ankle Boot", "t-shirt/top", "hat", "", "7", "-1", "bag "]),
    st.floats(-2, 12), _junk,
)
_labels = st.one_of(_label, st.lists(_label, max_size=12), st.lists(st.lists(_label, max_size=2), max_size=3),
                    hnp.arrays(st.sampled_from([np.int64, np.float32, np.uint8, np.bool_]),
                               hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)))
_count = st.one_of(st.integers(-5, 12), st.sampled_from([65_537, 10**12]), st.floats(0, 5), _junk)


@st.composite
def _latents(draw, z_dim: int):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.complex64, np.bool_]))
    shape = draw(st.one_of(st.tuples(st.integers(0, 6), st.sampled_from([z_dim, z_dim - 1, z_dim + 1, 1])),
                           hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
    a = draw(hnp.arrays(dtype, shape, elements=None if dtype in (np.bool_,) else
                        st.one_of(st.just(0), st.just(1), st.just(-2)) if dtype == np.int32 else None))
    return a


_settings = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.slow
@settings(max_examples=700, **_settings)
@given(data=st.data())
def test_generate_never_leaks_a_raw_exception(gen, data):
    p = gen
    kw = {}
    if data.draw(st.booleans()):
        kw["labels"] = data.draw(_labels)
    if data.draw(st.booleans()):
        kw["n"] = data.draw(_count)
    if data.draw(st.booleans()):
        kw["seed"] = data.draw(st.one_of(st.integers(-5, 2**130), _junk))
    if data.draw(st.integers(0, 3)) == 0:
        kw["latents"] = data.draw(st.one_of(_latents(p.spec.z_dim), _junk))
    try:
        res = p.generate(**kw)
    except SkugenError as e:
        event(f"refused: {type(e).__name__}")
        return
    event("ran")
    assert res.images.dtype == np.uint8 and res.images.shape[0] == len(res.labels) >= 1


@st.composite
def _image(draw, files: dict):
    kind = draw(st.integers(0, 5))
    if kind == 0:  # random arrays: dtypes, ranks, empty axes, odd channel counts
        dtype = draw(st.sampled_from([np.uint8, np.uint8, np.float32, np.int16, np.bool_, np.float64]))
        shape = draw(st.one_of(
            st.tuples(st.integers(0, 20), st.integers(0, 20), st.sampled_from([0, 1, 2, 3, 3, 4, 5])),
            hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)))
        return draw(hnp.arrays(dtype, shape))
    if kind == 1:  # non-contiguous views of a valid image: flips, strides, channel reversal
        a = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)
        return draw(st.sampled_from([a[::-1], a[:, ::2], a[..., ::-1], a[2:5, 3:9], a.transpose(1, 0, 2)]))
    if kind == 2:  # PIL images of every mode
        from PIL import Image

        mode = draw(st.sampled_from(["1", "L", "P", "RGB", "RGBA", "CMYK", "I", "F", "LA", "I;16", "YCbCr"]))
        return Image.new(mode, (draw(st.integers(1, 9)), draw(st.integers(1, 9))))
    if kind == 3:  # files: garbage, truncated PNGs, directories, missing paths
        return draw(st.sampled_from(sorted(files.values(), key=str)))
    if kind == 4:
        return draw(_junk)
    return draw(st.lists(st.deferred(lambda: _image(files)), max_size=3))


@pytest.fixture(scope="module")
def junk_files(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("junk")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    files = {"missing": d / "missing.png", "dir": d}
    for i, cut in enumerate([0, 8, 20, 33, 60, len(png) // 2, len(png) - 12, len(png)]):
        f = d / f"cut{i}.png"
        f.write_bytes(png[:cut])
        files[f.name] = f
    for i, blob in enumerate([b"GIF89a\x00", b"\xff\xd8\xff\xe0garbage", b"BM\x00\x00", b"%PDF-1.4", bytes(range(256))]):
        f = d / f"junk{i}.jpg"
        f.write_bytes(blob)
        files[f.name] = f
    return files


@pytest.mark.slow
@settings(max_examples=400, **_settings)
@given(data=st.data())
def test_enhance_never_leaks_a_raw_exception(enh, junk_files, data):
    images = data.draw(_image(junk_files))
    tile = data.draw(st.one_of(st.just(True), st.booleans(), st.integers(-2, 40), _junk))
    try:
        res = enh.enhance(images, tile=tile)
    except SkugenError as e:
        event(f"refused: {type(e).__name__}")
        return
    event("ran")
    imgs = res.images if isinstance(res.images, list) else list(res.images)
    assert all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[2] == 3 for i in imgs)


def test_16bit_float_and_transparent_images_keep_their_content(tmp_path):
    from PIL import Image

    from skugen.prepost import as_rgb_images, decode_image

    ramp = np.linspace(0, 65535, 256, dtype=np.uint16)[None].repeat(4, 0)          # (4, 256) 16-bit grey
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    got = decode_image(tmp_path / "ramp16.png")
    assert got.shape == (4, 256, 3) and len(np.unique(got)) == 256                  # convert("RGB") left 5 values
    np.testing.assert_array_equal(got[0, :, 0], np.rint(ramp[0].astype(np.float64) * 255 / 65535).astype(np.uint8))
    f = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32)[None].repeat(2, 0), mode="F")
    (img,), _ = as_rgb_images(f)
    assert img[0, -1, 0] == 255 and img[0, 32, 0] == round(32 / 63 * 255)            # [0,1] float scaled, not 0/1
    with pytest.raises(InputError, match="Rescale it to 8-bit"):
        as_rgb_images(Image.fromarray(np.full((2, 2), -3.0, np.float32), mode="F"))
    rgba = np.zeros((2, 2, 4), np.uint8)                                              # fully transparent
    (img,), _ = as_rgb_images(Image.fromarray(rgba, "RGBA"))
    assert (img == 255).all()                                                          # white, not black
