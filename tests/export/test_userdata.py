"""The user's own data (export.userdata): spec parsing, reproducible disjoint splits, the gate's sets, baselines,
and the must-hold end-to-end check: a small x2 upscaler trained here on clean bicubic pairs of real GroceryStore
photos; the INT8 gate's drop on the user's data agrees with a re-measurement on held-out photos."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from skugen.errors import DataError, InputError
from skugen.export import data, userdata


def _grocery_paths() -> list[Path]:
    try:
        return [p for p, _, _ in data.grocery_split("test")]
    except DataError:
        pytest.skip("GroceryStore not found (../shared/data/grocery-store); the user-data tests need real photos")


def _folder(tmp_path: Path, paths: list[Path], name: str = "photos") -> Path:
    d = tmp_path / name
    d.mkdir()
    for i, p in enumerate(paths):
        shutil.copyfile(p, d / f"{i:03d}_{p.name}")
    return d


# ----------------------------------------------------------------------------- spec + splits


def test_split_is_disjoint_complete_and_order_independent():
    names = [f"img{i:03d}.jpg" for i in range(40)]
    a = userdata.split_names(names, seed=0)
    b = userdata.split_names(list(reversed(names)), seed=0)
    assert a == b
    flat = [n for p in userdata.PARTS for n in a[p]]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert all(a[p] for p in userdata.PARTS)
    assert userdata.split_names(names, seed=1) != a  # the seed changes the split
    # adding a file never moves an existing one out of calibration into the gate (or back)
    more = userdata.split_names(names + ["zzz.jpg"], seed=0)
    assert not set(a["calib"]) & set(more["gate"]) and not set(a["gate"]) & set(more["calib"])


def test_split_needs_four_items():
    with pytest.raises(DataError, match="Add images"):
        userdata.split_names(["a", "b", "c"])


def test_parse_data_forms(tmp_path):
    (tmp_path / "imgs").mkdir()
    assert userdata.parse_data(tmp_path / "imgs").kind == "images"
    assert userdata.parse_data(tmp_path / "imgs").degradation == userdata.DEFAULT_DEGRADATION == "bicubic"
    assert userdata.parse_data(tmp_path / "imgs", "skugen-realistic").degradation == "skugen-realistic"
    (tmp_path / "pairs" / "lr").mkdir(parents=True)
    (tmp_path / "pairs" / "hr").mkdir()
    assert userdata.parse_data(tmp_path / "pairs").kind == "pairs"
    np.savez(tmp_path / "x.npz", z=np.zeros((4, 2), np.float32))
    assert userdata.parse_data(tmp_path / "x.npz").kind == "npz"
    assert userdata.parse_data("my_pkg.data:make_set").kind == "factory"
    with pytest.raises(DataError, match="does not exist"):
        userdata.parse_data(tmp_path / "nope")
    with pytest.raises(InputError, match="degradation must be one of"):
        userdata.parse_data(tmp_path / "imgs", "jpeg")
    # the I/O spec's key, relative to the spec's folder
    spec = tmp_path / "io.json"
    spec.write_text('{"kind": "enhancer", "data": {"path": "imgs", "degradation": "skugen-realistic"}}')
    d = userdata.for_import(spec)
    assert d.path == str((tmp_path / "imgs").resolve()) and d.degradation == "skugen-realistic"
    assert userdata.from_card({"data": userdata.card_entry(d)}) == d
    assert userdata.from_card({"data": userdata.card_entry(None)}) is None


def test_gate_sets_use_disjoint_images_at_the_deploy_tile(tmp_path):
    paths = _grocery_paths()[:20]
    spec = userdata.parse_data(_folder(tmp_path, paths))
    gs = userdata.gate_sets(spec, "enhancer", scale=2, tile=128, calib_n=8, eval_n=6)
    src = userdata.Source(spec)
    assert not set(src.parts["calib"]) & (set(src.parts["gate"]) | set(src.parts["confirm"]))
    assert gs.calib["lr"].shape == (8, 3, 128, 128)            # GroceryStore photos are >= 348 px: the full tile
    assert gs.gate.feeds["lr"].shape == (6, 3, 128, 128) and gs.gate.hr.shape == (6, 256, 256, 3)
    assert gs.info["at_deploy_tile"] and "bicubic" in gs.source
    # clean bicubic LR: the gate's LR is exactly PIL's bicubic downscale of its HR
    from PIL import Image

    hr = gs.gate.hr[0]
    lr = np.asarray(Image.fromarray(hr).resize((128, 128), Image.BICUBIC))
    assert np.array_equal(np.rint(gs.gate.feeds["lr"][0].transpose(1, 2, 0) * 255).astype(np.uint8), lr)
    # reproducible
    again = userdata.gate_sets(spec, "enhancer", scale=2, tile=128, calib_n=8, eval_n=6)
    assert np.array_equal(again.gate.hr, gs.gate.hr) and np.array_equal(again.calib["lr"], gs.calib["lr"])
    # small images: the largest crop they allow
    small = userdata.gate_sets(spec, "enhancer", scale=2, tile=400, calib_n=2, eval_n=2)
    assert small.info["lr_crop"] == 174 and not small.info["at_deploy_tile"]


def test_generator_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", z=rng.standard_normal((40, 8)).astype(np.float32), labels=np.arange(40) % 5)
    gs = userdata.gate_sets(userdata.parse_data(tmp_path / "in.npz"), "generator", n_classes=5, calib_n=100)
    n = {k: len(v) for k, v in (("calib", gs.calib["z"]), ("gate", gs.gate.labels), ("confirm", gs.confirm.labels))}
    assert sum(n.values()) + 24 == 40 and all(n.values())  # 60% train
    assert gs.gate.feeds["onehot"].shape == (n["gate"], 5)
    assert np.array_equal(gs.gate.feeds["onehot"].argmax(1), gs.gate.labels)
    with pytest.raises(DataError, match="labels must be in"):
        userdata.gate_sets(userdata.parse_data(tmp_path / "in.npz"), "generator", n_classes=3)


def test_bicubic_baseline_warns_below_bicubic(tmp_path):
    spec = userdata.parse_data(_folder(tmp_path, _grocery_paths()[:8]))
    ev = userdata.gate_sets(spec, "enhancer", calib_n=1, eval_n=4).gate
    b = userdata.bicubic_psnr_y(ev)
    assert 20.0 < b < 50.0
    assert userdata.enhancer_baseline(b - 0.5, ev)["warning"] is None
    w = userdata.enhancer_baseline(b - 3.0, ev)["warning"]
    assert "input_range" in w and "output_range" in w and "--data" in w


# ----------------------------------------------------------------------------- must hold: a user's upscaler, end to end

FACTORY = '''
import torch, torch.nn as nn, torch.nn.functional as F

class Up(nn.Module):
    """ESPCN-style x2 on [0, 255] input: a bicubic skip plus a learned residual."""
    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 32, 5, padding=2), nn.Conv2d(32, 32, 3, padding=1), nn.Conv2d(32, 12, 3, padding=1)
        self.ps = nn.PixelShuffle(2)
    def forward(self, x):
        r = self.ps(self.c3(F.relu(self.c2(F.relu(self.c1(x / 255.0))))))
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) + 255.0 * r

def make():
    return Up()
'''


def _train(factory: Path, photos: list[Path], steps: int):
    import torch
    from file_modules import load_file  # tests/support
    import torch.nn.functional as F

    mod = load_file(factory, "user_up")
    torch.manual_seed(0)
    net = mod.make()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    imgs = [data.load_rgb(p) for p in photos]  # decoded once, not once per step
    for step in range(steps):  # clean bicubic pairs: what this user's photos look like
        rng = np.random.default_rng(step)
        hr = np.stack([data.random_crop(imgs[int(rng.integers(0, len(imgs)))], 96, rng) for _ in range(16)])
        lr = np.stack([data.degrade(c, rng, data.CLEAN_DEGRADE) for c in hr])
        x = torch.from_numpy(lr).permute(0, 3, 1, 2).float()
        y = torch.from_numpy(hr).permute(0, 3, 1, 2).float()
        loss = F.l1_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


# The per-image INT8 drop is heavy-tailed (flat, high-PSNR photos lose the most: one held-out photo lost 1.9 dB in the
# TensorRT flavour where the mean was 0.15), so a mean over ~10 gate photos against 20 held-out ones sat 0.048 dB
# apart by luck of the draw. Many photos on both sides, one or two crops each: crops of one photo overlap and add
# little; more photos are what shrink the spread of the two means.
N_USER, N_HELD = 300, 100   # 300 user photos -> gate part 45 (90 crops), confirm 30; 100 held-out photos, 1 crop each


@pytest.fixture(scope="module")
def user_upscaler(tmp_path_factory):
    from safetensors.torch import save_file

    paths = _grocery_paths()
    rng = np.random.default_rng(7)
    pick = [paths[i] for i in rng.choice(len(paths), N_USER + N_HELD, replace=False)]
    root = tmp_path_factory.mktemp("user")
    folder = _folder(root, pick[:N_USER])      # the user's data (split by skugen into train/calib/gate/confirm)
    held_out = pick[N_USER:]                   # photos skugen never sees
    factory = root / "up.py"
    factory.write_text(FACTORY)
    train = [folder / n for n in userdata.Source(userdata.parse_data(folder)).parts["train"]]
    net = _train(factory, train, steps=120)
    save_file(net.state_dict(), str(root / "up.safetensors"))
    return root, folder, held_out, factory


def _import_export(root: Path, folder: Path, factory: Path, input_range, tag: str, int8: bool = True,
                   eval_n: int | None = 48):
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.custom import import_model
    from skugen.export.quantize import QualityBudget

    io = {"kind": "enhancer", "scale": 2, "input_range": input_range, "output_range": [0, 255]}
    mdir = import_model(f"{factory}:make", io, root / f"model-{tag}", root / "up.safetensors", data=str(folder))
    # a wide budget so the all-INT8 model ships and its drop is what the gate reports
    cfg = BundleConfig(int8=int8, budget=QualityBudget(max_psnr_drop_db=1.0), calib_n=64, eval_n=eval_n,
                       openvino=False, fp16=False)  # the must-hold is about the ORT / TensorRT INT8 gate
    return export_bundle(mdir, root / f"bundle-{tag}", cfg)


def _psnr_y(onnx_path: Path, lr: np.ndarray, hr: np.ndarray) -> float:
    from skugen import evaluate
    from skugen.export.onnx_export import lr_to_feed
    from skugen.export.quantize import _run

    sr = evaluate.to_uint8(_run(onnx_path.read_bytes(), {"lr": lr_to_feed(lr)}, batch=8), (0.0, 1.0))
    return evaluate.psnr_result(sr, hr, y_channel=True, crop_border=2).value


@pytest.mark.slow
def test_gate_drop_on_user_data_matches_held_out_photos(user_upscaler):
    """Like for like: each INT8 flavour's drop as the gate reports it (on the user's gate part) against the same
    flavour re-measured on photos that were never in the user's folder, at the same 128 px LR tile.

    The gate chooses float layers on the TensorRT flavour (int8 activations; the coarser one, so what holds for it
    holds for the ONNX Runtime flavour) and reports it as `final`; the ONNX Runtime flavour, which ONNX Runtime
    runs, is reported as `final_onnxruntime_flavour`. Both must agree with their re-measurement."""
    import json

    root, folder, held_out, factory = user_upscaler
    b = _import_export(root, folder, factory, [0, 255], "ok", eval_n=None)  # the default: 2 crops per gate photo
    q = json.loads((b / "reports" / "quantization.json").read_text())
    src = q["eval"]["source"]
    assert "your images" in src and "128 px LR" in src and "(45 images), 90 crops" in src  # user data, deploy tile
    gate = {"tensorrt": q["final"]["psnr_y_drop_db"], "onnxruntime": q["final_onnxruntime_flavour"]["psnr_y_drop_db"]}
    spec = userdata.parse_data(folder)
    items = [(None, data.load_rgb(p)) for p in held_out]
    lr, hr = userdata.crops(spec, items, len(items), 128, 2, seed=99)   # one clean-bicubic 128 px LR tile per photo
    fp32 = _psnr_y(b / "model.fp32.onnx", lr, hr)
    held = {"tensorrt": fp32 - _psnr_y(b / "model.int8.trt.onnx", lr, hr),
            "onnxruntime": fp32 - _psnr_y(b / "model.int8.onnx", lr, hr)}
    print("\n" + "; ".join(f"{k}: gate {gate[k]:.3f} dB, held-out {held[k]:.3f} dB, |diff| {abs(gate[k] - held[k]):.3f}"
                           for k in gate) + f" | FP32 {fp32:.2f} dB on {len(items)} held-out photos")
    assert gate["tensorrt"] > 0.0 and gate["onnxruntime"] > 0.0
    for k in gate:
        assert abs(gate[k] - held[k]) <= 0.05, (k, gate[k], held[k])
    qual = json.loads((b / "reports" / "quality.json").read_text())
    assert qual["baseline"]["warning"] is None
    assert qual["baseline"]["fp32_psnr_y_db"] > qual["baseline"]["bicubic_psnr_y_db"] - 1.0


@pytest.mark.slow
def test_wrong_input_range_warns(user_upscaler):
    root, folder, _, factory = user_upscaler
    with pytest.warns(userdata.BaselineWarning, match="input_range"):
        b = _import_export(root, folder, factory, [0, 1], "wrong-range", int8=False)  # a [0, 255] model as [0, 1]
    import json

    base = json.loads((b / "reports" / "quality.json").read_text())["baseline"]
    assert base["fp32_psnr_y_db"] < base["bicubic_psnr_y_db"] - userdata.BICUBIC_WARN_DB
