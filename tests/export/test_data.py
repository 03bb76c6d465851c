"""Real data loaders: Fashion-MNIST idx parsing/verification and GroceryStore splits + degradations."""
import gzip
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from skugen.errors import DataError, InputError
from skugen.export import data


@pytest.fixture(scope="module")
def fmnist_root():
    try:
        return data.find_fmnist(allow_download=False)
    except DataError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")


def test_fmnist_counts_shapes_and_checksums(fmnist_root):
    x, y = data.load_fmnist("train", fmnist_root)
    xt, yt = data.load_fmnist("test", fmnist_root)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10
    m = data.fmnist_to_model(xt[:4])
    assert m.shape == (4, 1, 32, 32) and m.min() >= -1 and m.max() <= 1
    assert (m[:, :, :2] == -1).all()  # 2px pad at the top is background


def _copy_fmnist(src, dst):
    for n in data.FMNIST_FILES:
        shutil.copy(src / f"{n}.gz", dst / f"{n}.gz")


def test_fmnist_corrupt_payload_is_refused(fmnist_root, tmp_path):
    _copy_fmnist(fmnist_root, tmp_path)
    raw = bytearray(gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz").read())
    raw[100] = (raw[100] + 1) % 10  # still a valid label, but content differs
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    data._load_fmnist_cached.cache_clear()
    with pytest.raises(DataError, match="checksum mismatch"):
        data.load_fmnist("test", tmp_path)


def test_fmnist_bad_magic_and_truncation(fmnist_root, tmp_path):
    _copy_fmnist(fmnist_root, tmp_path)
    raw = bytearray(gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read())
    bad = bytes(struct.pack(">I", 1234)) + bytes(raw[4:])
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bad))
    data._load_fmnist_cached.cache_clear()
    with pytest.raises(DataError, match="magic"):
        data.load_fmnist("test", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(raw[:-10])))
    data._load_fmnist_cached.cache_clear()
    with pytest.raises(DataError, match="truncated"):
        data.load_fmnist("test", tmp_path)


def test_fmnist_missing_gives_hint_not_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FMNIST_DEBIAN_DIR", tmp_path / "nope")
    monkeypatch.delenv("SKUGEN_FMNIST_DIR", raising=False)
    monkeypatch.setenv("SKUGEN_ALLOW_DOWNLOAD", "0")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.find_fmnist()
    with pytest.raises(DataError, match="lacks"):
        data.find_fmnist(tmp_path)


def test_fmnist_env_var_search_order(fmnist_root, tmp_path, monkeypatch):
    _copy_fmnist(fmnist_root, tmp_path)
    monkeypatch.setenv("SKUGEN_FMNIST_DIR", str(tmp_path))
    assert data.find_fmnist() == tmp_path
    assert data.find_fmnist(fmnist_root) == fmnist_root  # explicit dir wins


@pytest.fixture(scope="module")
def grocery_root():
    try:
        return data.find_grocery()
    except DataError as e:
        pytest.skip(str(e))


def test_grocery_splits_classes_iconic(grocery_root):
    for split, n in data.GROCERY_SPLITS.items():
        items = data.grocery_split(split, grocery_root)
        assert len(items) == n
        assert items[0][0].is_file()
    classes = data.grocery_classes(grocery_root)
    assert len(classes) == 81 and len({c.coarse_id for c in classes}) == 43
    assert all(c.iconic_path.is_file() for c in classes)
    assert "golden delicious" in classes[0].description.lower()


def test_degradation_is_seeded_and_shaped(grocery_root):
    paths = [p for p, _, _ in data.grocery_split("train", grocery_root)][:20]
    lr1, hr1 = data.sr_pairs(paths, 4, 96, seed=7)
    lr2, hr2 = data.sr_pairs(paths, 4, 96, seed=7)
    lr3, _ = data.sr_pairs(paths, 4, 96, seed=8)
    assert lr1.shape == (4, 48, 48, 3) and hr1.shape == (4, 96, 96, 3)
    assert np.array_equal(lr1, lr2) and np.array_equal(hr1, hr2)
    assert not np.array_equal(lr1, lr3)
    # the degraded image is a worse version of the clean one, not noise
    from skugen.metrics import psnr
    from skugen.evaluate import bicubic_upscale
    assert 15 < psnr(bicubic_upscale(lr1, 2), hr1) < 40


def test_clean_samples_are_plain_bicubic_and_off_by_default(grocery_root):
    hr = data.random_crop(data.load_rgb(data.grocery_split("train", grocery_root)[0][0]), 64, np.random.default_rng(0))
    clean = data.degrade(hr, np.random.default_rng(1), data.DegradeConfig(clean_prob=1.0))
    assert np.array_equal(clean, np.asarray(Image.fromarray(hr).resize((32, 32), Image.BICUBIC)))
    # clean_prob 0 draws nothing: the evaluation sets' RNG streams (and so every reported number) are unchanged
    a = data.degrade(hr, np.random.default_rng(1))
    assert np.array_equal(a, data.degrade(hr, np.random.default_rng(1), data.DegradeConfig(clean_prob=0.0)))
    assert not np.array_equal(a, clean)
    # the training mix: about 1 in 10 crops clean, i.e. exactly its bicubic downscale
    paths = [p for p, _, _ in data.grocery_split("train", grocery_root)][:20]
    lr, hr = data.sr_pairs(paths, 60, 64, seed=3, cfg=data.TRAIN_DEGRADE)
    n_clean = sum(np.array_equal(l, np.asarray(Image.fromarray(h).resize((32, 32), Image.BICUBIC))) for l, h in zip(lr, hr))
    assert 1 <= n_clean <= 15


def test_degrade_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="uint8"):
        data.degrade(np.zeros((8, 8, 3), np.float32), rng)
    with pytest.raises(InputError, match="divisible"):
        data.degrade(np.zeros((9, 8, 3), np.uint8), rng)


def test_data_check_cli_json(fmnist_root, grocery_root):
    out = subprocess.run([sys.executable, "-m", "skugen.cli", "data", "check", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)["datasets"]
    assert d["fashion-mnist"]["counts"] == {"train": 60000, "test": 10000} and d["fashion-mnist"]["verified"]
    g = d["grocery-store"]
    assert (g["counts"]["train"], g["counts"]["val"], g["counts"]["test"]) == (2640, 296, 2485) and g["verified"]


def test_data_check_missing_dataset_message(tmp_path):
    # --data-dir is strict, so pointing it at an empty folder makes Fashion-MNIST missing in this checkout
    out = subprocess.run([sys.executable, "-m", "skugen.cli", "data", "check", "--data-dir", str(tmp_path),
                          "--require", "fmnist"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "lacks" in out.stdout and "without it you cannot run" in out.stdout and "make demo" in out.stdout


@pytest.fixture
def no_grocery(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "grocery_candidates", lambda: [tmp_path / "no-grocery"])


def test_data_check_reports_missing_grocery_without_failing_fmnist_work(fmnist_root, no_grocery):
    rep = data.check_data()
    by = {d.name: d for d in rep.datasets}
    assert by["fashion-mnist"].usable and by["grocery-store"].state == "MISSING"
    assert rep.ok and rep.problems == []  # nothing was required and Fashion-MNIST is usable
    text = rep.format()
    assert "grocery-store  MISSING" in text and "grocery-sr2x" in text and "without it you cannot run" in text
    assert data.check_data(["fmnist"]).ok
    bad = data.check_data(["fmnist", "grocery"])
    assert not bad.ok and [d.name for d in bad.problems] == ["grocery-store"]
    assert bad.to_dict()["datasets"]["grocery-store"]["state"] == "MISSING" and not bad.to_dict()["ok"]


def test_data_check_fails_when_nothing_is_usable(no_grocery, tmp_path):
    rep = data.check_data(data_dir=tmp_path)  # an explicit, empty Fashion-MNIST folder
    assert not rep.ok and {d.name for d in rep.problems} == {"fashion-mnist", "grocery-store"}
    assert "not usable: fashion-mnist, grocery-store" in rep.format()


def test_data_check_rejects_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'imagenet'.*choose from"):
        data.check_data(["imagenet"])


def test_sr_eval_set_refuses_crops_larger_than_the_photos(grocery_root):
    with pytest.raises(InputError, match="do not fit"):  # GroceryStore photos are 348 px on their short side
        data.sr_eval_set("test", 4, hr_size=400)
    with pytest.raises(InputError, match="multiple of the scale"):
        data.sr_eval_set("test", 4, hr_size=127)
    lr, hr = data.sr_eval_set("test", 2, hr_size=348)
    assert hr.shape == (2, 348, 348, 3) and lr.shape == (2, 174, 174, 3)
