"""A user's own model through skugen: factory / TorchScript / ExportedProgram + I/O spec (skugen.export.custom).

The fixtures (tests/export/fixtures/user_models.py) break skugen's conventions on purpose:
[0, 255] pixels, BatchNorm, int64 class indices, [0, 1] RGB output, a hard-coded reshape.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skugen.errors import InputError, ModelError  # noqa: E402
from skugen.export import ckpt, custom, models  # noqa: E402
from skugen.export.compress import CompressConfig, compress  # noqa: E402
from file_modules import load_file  # noqa: E402  (tests/support)

FIX = Path(__file__).parent / "fixtures" / "user_models.py"
UP_SPEC = {"kind": "enhancer", "in_ch": 3, "scale": 2, "input_range": [0, 255], "output_range": [0, 255]}
GEN_SPEC = {"kind": "generator", "z_dim": 16, "n_classes": 4, "conditioning": "index", "out_ch": 3,
            "image_size": 16, "output_range": [0, 1], "class_names": ["mug", "cap", "bag", "shoe"],
            "ignored_layers": ["fc"]}


def _user(name: str):
    mod = load_file(FIX, "user_models_t", register=True)  # registered: torch.save pickles the class (refusal test)
    return getattr(mod, name)()


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """The upscaler saved the three ways a user would hand it over."""
    d = tmp_path_factory.mktemp("programs")
    m = _user("make_upscaler")
    x = torch.rand(2, 3, 20, 24) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(m, x), str(d / "up.ts"))
        dims = {0: torch.export.Dim("b", min=1, max=64), 2: torch.export.Dim("h", min=8, max=512),
                3: torch.export.Dim("w", min=8, max=512)}
        torch.export.save(torch.export.export(m, (x,), dynamic_shapes=(dims,)), str(d / "up.pt2"))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(d / "up.safetensors"))
    torch.save(m, str(d / "pickled.pt"))  # what skugen must refuse to load
    return d

# ----------------------------------------------------------------------------- spec


@pytest.mark.parametrize("spec, msg", [
    ({"kind": "classifier"}, "'kind' must be"),
    ({"kind": "enhancer", "scale": 0}, "'scale' must be a positive integer"),
    ({"kind": "enhancer", "z_dim": 8}, "not valid for a enhancer"),
    ({"kind": "enhancer", "in_ch": 1}, "in_ch must be 3"),
    ({"kind": "enhancer", "input_range": [1, 0]}, "high > low"),
    ({"kind": "generator", "z_dim": 8, "n_classes": 2, "image_size": 8, "class_names": ["a"]}, "2 non-empty strings"),
    ({"kind": "generator", "z_dim": 8, "n_classes": 2, "image_size": 8, "conditioning": "text"}, "'onehot' or 'index'"),
])
def test_bad_specs_say_what_is_wrong(spec, msg):
    with pytest.raises(InputError, match=msg):
        custom.parse_io_spec(spec)


def test_spec_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        custom.parse_io_spec(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{kind: enhancer")
    with pytest.raises(InputError, match="not valid JSON"):
        custom.parse_io_spec(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["model.onnx", "nomodule"])
def test_unknown_references(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")  # exists, but is none of the accepted forms
    with pytest.raises(InputError, match="cannot tell what"):
        custom.detect_format(str(tmp_path / name))
    with pytest.raises(InputError, match="does not exist"):  # a typo is reported as one
        custom.detect_format(str(tmp_path / "typo" / name))

# ----------------------------------------------------------------------------- import


def test_factory_import_round_trip_and_contract(tmp_path, programs):
    d = custom.import_model(f"{FIX}:make_upscaler", UP_SPEC, tmp_path / "up", weights=programs / "up.safetensors")
    card = json.loads((d / "card.json").read_text())
    assert card["config"]["family"] == "custom" and card["config"]["format"] == "factory"
    # MACs counted, not estimated: 3x3 convs 3->32, 32->32, 32->12 on a 64x64 LR image
    assert card["macs"] == 64 * 64 * 9 * (3 * 32 + 32 * 32 + 32 * 12)
    model, _ = ckpt.load_model(d)
    user = _user("make_upscaler")
    x = torch.rand(2, 3, 16, 20)
    with torch.no_grad():  # the wrapper maps skugen's [0, 1] onto the user's [0, 255] and back
        np.testing.assert_allclose(model(x).numpy(), (user(x * 255) / 255).numpy(), atol=1e-5)


def test_frozen_formats_match_the_factory(tmp_path, programs):
    ref, _ = ckpt.load_model(custom.import_model(f"{FIX}:make_upscaler", UP_SPEC, tmp_path / "f"))
    x = torch.rand(3, 3, 12, 28)
    for name in ("up.ts", "up.pt2"):
        d = custom.import_model(str(programs / name), UP_SPEC, tmp_path / name)
        card = json.loads((d / "card.json").read_text())
        assert (d / card["program"]["file"]).is_file()
        m, _ = ckpt.load_model(d)
        with torch.no_grad():
            np.testing.assert_allclose(m(x).numpy(), ref(x).numpy(), atol=1e-5, err_msg=name)


def test_tampered_program_is_refused(tmp_path, programs):
    d = custom.import_model(str(programs / "up.pt2"), UP_SPEC, tmp_path / "ep")
    p = d / "model.pt2"
    p.write_bytes(p.read_bytes() + b"x")
    with pytest.raises(ModelError, match="does not match the sha256"):
        ckpt.load_model(d)


def test_pickles_and_wrong_specs_are_refused(tmp_path, programs):
    with pytest.raises(ModelError, match="never unpickles"):
        custom.import_model(str(programs / "pickled.pt"), UP_SPEC, tmp_path / "p")
    with pytest.raises(ModelError, match="promises a float32 tensor shaped"):  # it is x2, not x3
        custom.import_model(f"{FIX}:make_upscaler", {**UP_SPEC, "scale": 3}, tmp_path / "s")
    with pytest.raises(ModelError, match="not a torch.nn.Module"):
        custom.import_model(f"{FIX}:not_a_module", UP_SPEC, tmp_path / "n")
    with pytest.raises(InputError, match="no callable"):
        custom.import_model(f"{FIX}:nothing_here", UP_SPEC, tmp_path / "n2")
    with pytest.raises(InputError, match="carries its own weights"):
        custom.import_model(str(programs / "up.ts"), UP_SPEC, tmp_path / "w", weights=programs / "up.safetensors")
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()  # nothing half-written

# ----------------------------------------------------------------------------- export + runtime


@pytest.mark.parametrize("fmt", ["factory", "up.ts", "up.pt2"])
def test_every_format_exports_to_a_verified_bundle(tmp_path, programs, fmt):
    import skugen
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.verify import verify_bundle

    ref = f"{FIX}:make_upscaler" if fmt == "factory" else str(programs / fmt)
    src = custom.import_model(ref, UP_SPEC, tmp_path / "m")
    out = export_bundle(src, tmp_path / "b", BundleConfig(int8=True, calib_n=16, eval_n=8, openvino=False))
    m = json.loads((out / "manifest.json").read_text())
    # bilinear skip (1 LR px) + three 3x3 convs: measured, not assumed
    assert m["tile"]["receptive_radius"] == 4 and m["tile"]["overlap"] >= 8
    assert json.loads((out / "reports" / "parity.json").read_text())["pass"]
    for p in ("fp32", "int8"):
        assert verify_bundle(skugen.bundle.load_bundle(out), backend="onnxruntime", precision=p).passed, p
    if fmt == "factory":
        assert m["models"]["fp32"]["bn_folded"] == 1
    with skugen.load(out, backend="onnxruntime", precision="fp32") as pipe:
        img = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
        res = pipe.enhance(img)
    assert res.images[0].shape == (80, 104, 3) and res.images[0].dtype == np.uint8


def test_generator_compress_prunes_the_users_graph(tmp_path):
    """MetaPruner on the user's module: MACs at target, output + ignored layers whole, student frozen via torch.export."""
    teacher_dir = custom.import_model(f"{FIX}:make_generator", GEN_SPEC, tmp_path / "t")
    st = compress(str(teacher_dir), CompressConfig(out=str(tmp_path / "s"), target_macs_frac=0.5, distill_steps=30,
                                                   seed=0, distill_batch=8)).out
    card = json.loads((st / "card.json").read_text())
    assert card["config"]["format"] == "exported_program" and card["macs_ratio"] <= 0.5
    assert card["prune"]["macs_after"] < card["prune"]["macs_before"]
    assert set(card["prune"]["ignored"]) == {"net.conv2", "fc"}
    assert card["distill"]["l1_end"] < card["distill"]["l1_start"]
    student, _ = ckpt.load_model(st)
    teacher, _ = ckpt.load_model(teacher_dir)
    z, onehot = models.example_inputs(teacher.cfg, 5)
    with torch.no_grad():
        ys, yt = student(z, onehot), teacher(z, onehot)
    assert ys.shape == yt.shape == (5, 3, 16, 16)
    assert float(yt.min()) >= -1.0 and float(yt.max()) <= 1.0  # user's sigmoid [0, 1] mapped to [-1, 1]
    # class conditioning survived: the same latent gives different images for different classes
    assert float((student(z, onehot.roll(1, 1)) - ys).abs().mean()) > 1e-3


def test_hard_coded_reshape_gets_a_hint(tmp_path):
    spec = {k: v for k, v in GEN_SPEC.items() if k != "ignored_layers"}
    teacher_dir = custom.import_model(f"{FIX}:make_generator", spec, tmp_path / "t")
    with pytest.raises(ModelError, match="ignored_layers"):
        compress(str(teacher_dir), CompressConfig(out=str(tmp_path / "s"), target_macs_frac=0.5, distill_steps=1))


def test_frozen_models_cannot_be_pruned(tmp_path, programs):
    d = custom.import_model(str(programs / "up.ts"), UP_SPEC, tmp_path / "ts")
    with pytest.raises(ModelError, match="frozen graph"):
        compress(str(d), CompressConfig(out=str(tmp_path / "s"), target_macs_frac=0.5, distill_steps=1))


@pytest.mark.slow
def test_pipeline_on_a_users_generator_end_to_end(tmp_path):
    """The main job with a factory reference: import -> prune + distill -> ONNX/INT8 bundle -> verify -> bench."""
    from skugen.export.pipeline import PipelineConfig, format_summary, run_pipeline

    spec = tmp_path / "io.json"
    spec.write_text(json.dumps(GEN_SPEC))
    cfg = PipelineConfig(model=f"{FIX}:make_generator", out=str(tmp_path / "run"), io_spec=str(spec),
                         target_macs=0.5, distill_steps=20, bench_batches=(4,), bench_iters=3, bench_quality_n=32,
                         threads=1, calib_n=16)
    rep = run_pipeline(cfg)
    assert all(rep["verify"].values()) and rep["verify"]
    assert rep["stages"]["import"]["skipped"] is False
    m = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert m["io"]["class_names"] == GEN_SPEC["class_names"] and m["postprocess"]["layout"] == "RGB"
    text = format_summary(rep)
    assert rep["summary"].get("speedup_int8_vs_teacher", 0) > 0 and "PSNR vs teacher output" in text, text
    rep2 = run_pipeline(cfg)  # a re-run resumes: every stage is up to date
    assert all(t["skipped"] for t in rep2["stages"].values())


def test_pipeline_skips_compress_for_frozen_graphs(tmp_path, programs):
    from skugen.export.pipeline import PipelineConfig, run_pipeline

    spec = tmp_path / "io.json"
    spec.write_text(json.dumps(UP_SPEC))
    rep = run_pipeline(PipelineConfig(model=str(programs / "up.pt2"), out=str(tmp_path / "run"), io_spec=str(spec),
                                      skip_bench=True, threads=1, calib_n=16))
    assert rep["stages"]["compress"]["skipped"] and "frozen graph" in rep["stages"]["compress"]["reason"]
    assert all(rep["verify"].values())
    with pytest.raises(InputError, match="give its --io-spec"):
        run_pipeline(PipelineConfig(model=str(programs / "up.pt2"), out=str(tmp_path / "r2")))


def test_cli_import_then_compress(tmp_path, capsys):
    from skugen import cli

    spec = tmp_path / "io.json"
    spec.write_text(json.dumps(GEN_SPEC))
    assert cli.main(["import", f"{FIX}:make_generator", "--io-spec", str(spec), "--out", str(tmp_path / "t")]) == 0
    assert "generator (factory)" in capsys.readouterr().out
    assert cli.main(["compress", str(tmp_path / "t"), "--target-macs", "0.5", "--distill-steps", "5",
                     "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "PSNR vs teacher output" in out
    assert json.loads((tmp_path / "s" / "card.json").read_text())["macs_ratio"] <= 0.5
    assert cli.main(["compress", str(tmp_path / "t"), "--prune-ratio", "0.5", "--out", str(tmp_path / "s2")]) != 0
    assert "--target-macs" in capsys.readouterr().err


def test_custom_bundle_deploys_serves_and_generates(tmp_path):
    """A user's generator bundle (RGB, 4 named classes) through the product paths the zoo bundles take."""
    import tarfile

    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from skugen import cli
    from skugen.deploy import deploy
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.triton import export_triton

    src = custom.import_model(f"{FIX}:make_generator", GEN_SPEC, tmp_path / "g")
    b = export_bundle(src, tmp_path / "b", BundleConfig(int8=True, calib_n=16, eval_n=64))
    # skugen generate by class name, PNG grid out
    assert cli.main(["generate", str(b), "--class", "cap", "--n", "4", "--seed", "0", "--out", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.mode == "RGB"
    # deploy: the tar unpacks and verifies on CPU
    tar = deploy(b, "jetson-orin", tmp_path / "pkg.tar.gz")
    with tarfile.open(tar) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    root = next((tmp_path / "x").iterdir())
    assert cli.main(["verify", str(root / "bundle"), "--backend", "onnxruntime"]) == 0
    # Triton: every config parses into Triton's own ModelConfig; the post step emits 16x16x3 uint8
    repo = export_triton(b, tmp_path / "repo")
    cfgs = {f.parent.name: text_format.Parse(f.read_text(), model_config_pb2.ModelConfig())
            for f in Path(repo).glob("*/config.pbtxt")}
    outs = {o.name: list(o.dims) for c in cfgs.values() for o in c.output if o.name == "image"}
    assert outs and all(d == [16, 16, 3] for d in outs.values()), outs

# ----------------------------------------------------------------------------- self-contained model directories


def _project(root: Path, scale_out: float = 1.0) -> Path:
    """A user's project: nets.py imports its own blocks.py (a local module) and torch (an installed one)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "blocks.py").write_text(
        "import torch.nn as nn\n\n\nclass Body(nn.Module):\n    def __init__(self, w):\n        super().__init__()\n"
        "        self.c = nn.Conv2d(w, w, 3, padding=1)\n\n    def forward(self, h):\n        return self.c(h).relu()\n")
    (root / "nets.py").write_text(
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\nfrom blocks import Body\n\n\n"
        "class Gen(nn.Module):\n    def __init__(self, z=8, k=3, w=16):\n        super().__init__()\n"
        "        self.w = w\n        self.fc = nn.Linear(z + k, w * 64)\n        self.body = Body(w)\n"
        "        self.out = nn.Conv2d(w, 3, 3, padding=1)\n\n    def forward(self, z, onehot):\n"
        "        h = self.fc(torch.cat([z, onehot], 1)).view(z.shape[0], self.w, 8, 8)\n"
        "        h = F.interpolate(F.relu(self.body(h)), scale_factor=2.0, mode='nearest')\n"
        f"        return torch.tanh(self.out(h)) * {scale_out}\n\n\n"
        "def make(w=16):\n    torch.manual_seed(0)\n    return Gen(w=w).eval()\n")
    return root


PROJ_SPEC = {"kind": "generator", "z_dim": 8, "n_classes": 3, "image_size": 16, "ignored_layers": ["fc"],
             "name": "shopgen"}


def test_moved_project_still_exports_and_compresses(tmp_path):
    from skugen.export.bundle import BundleConfig, export_bundle

    proj = _project(tmp_path / "proj")
    d = custom.import_model(f"{proj / 'nets.py'}:make", PROJ_SPEC, tmp_path / "m")
    card = json.loads((d / "card.json").read_text())
    assert set(card["source"]["files"]) == {"nets.py", "blocks.py"}  # the local import came along, torch did not
    assert card["name"] == "shopgen" and len(card["source"]["sha256"]) == 64
    proj.rename(tmp_path / "renamed")  # the user moves the project away
    out = export_bundle(d, tmp_path / "b", BundleConfig(int8=False))
    assert json.loads((out / "manifest.json").read_text())["name"] == "shopgen"
    st = compress(str(d), CompressConfig(out=str(tmp_path / "s"), target_macs_frac=0.6, distill_steps=2,
                                         distill_batch=4)).out
    scard = json.loads((st / "card.json").read_text())
    assert scard["teacher"]["macs"] == card["macs"]  # counted at the same input size as the teacher's card


def test_altered_or_missing_source_copy_says_what_was_recorded(tmp_path):
    proj = _project(tmp_path / "proj")
    d = custom.import_model(f"{proj / 'nets.py'}:make", PROJ_SPEC, tmp_path / "m")
    (d / "source" / "blocks.py").write_text("# edited\n")
    with pytest.raises(ModelError, match=r"blocks.py has sha256 .* not the recorded .*copied it there from .*proj"):
        ckpt.load_model(d)
    (d / "source" / "blocks.py").unlink()
    with pytest.raises(ModelError, match=r"blocks.py is missing.*skugen import"):
        ckpt.load_model(d)


def test_source_digest_sees_local_modules_only(tmp_path):
    proj = _project(tmp_path / "proj")
    ref = f"{proj / 'nets.py'}:make"
    before = custom.source_digest(ref)
    (proj / "unrelated.py").write_text("x = 1\n")
    assert custom.source_digest(ref) == before
    (proj / "blocks.py").write_text((proj / "blocks.py").read_text() + "\n# tweak\n")
    assert custom.source_digest(ref) != before

# ----------------------------------------------------------------------------- warnings and error messages


def test_import_warns_about_missing_weights_and_convtranspose(tmp_path):
    with pytest.warns(UserWarning, match="no --weights given"):
        custom.import_model(f"{FIX}:make_upscaler", UP_SPEC, tmp_path / "a")
    with pytest.warns(UserWarning, match=r"up is a ConvTranspose.*nearest \+ Conv or PixelShuffle"):
        custom.import_model(f"{FIX}:make_convt_upscaler", {"kind": "enhancer"}, tmp_path / "b")


def test_weights_errors_end_with_the_fix(tmp_path, programs):
    from safetensors.torch import save_file

    ref = f"{FIX}:make_upscaler"
    with pytest.raises(InputError, match="does not exist. Check the path"):
        custom.import_model(ref, UP_SPEC, tmp_path / "a", weights=tmp_path / "nope.safetensors")
    sd = _user("make_upscaler").state_dict()
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(InputError, match=r"torch.save file .* Convert it once with: python -c .*save_file"):
        custom.import_model(ref, UP_SPEC, tmp_path / "b", weights=tmp_path / "w.pt")
    torch.save(sd, tmp_path / "w2.safetensors")  # a pickle with the right suffix
    with pytest.raises(InputError, match="Convert it once with"):
        custom.import_model(ref, UP_SPEC, tmp_path / "b2", weights=tmp_path / "w2.safetensors")
    save_file({f"module.{k}": v.contiguous() for k, v in sd.items()}, str(tmp_path / "dp.safetensors"))
    with pytest.raises(ModelError, match=r"start with 'module\.'.*removeprefix"):
        custom.import_model(ref, UP_SPEC, tmp_path / "c", weights=tmp_path / "dp.safetensors")
    with pytest.raises(ModelError, match=r"shape \(file vs factory\).*Check the I/O spec's factory_kwargs") as e:
        custom.import_model(ref, {**UP_SPEC, "factory_kwargs": {"width": 16}}, tmp_path / "d",
                            weights=programs / "up.safetensors")
    msg = str(e.value)
    assert msg.endswith("is this model's file.") and " ..." not in msg.split("(")[0]
    for part in msg.split(": ")[1:]:  # every listed key is whole (the message is not cut mid-word)
        assert not part.endswith("-")


def test_static_pt2_says_to_reexport_with_dynamic_shapes(tmp_path):
    m = _user("make_upscaler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(m, (torch.rand(1, 3, 16, 16) * 255,)), str(tmp_path / "static.pt2"))
    with pytest.raises(ModelError, match="re-export it with dynamic_shapes"):
        custom.import_model(str(tmp_path / "static.pt2"), UP_SPEC, tmp_path / "s")


def test_mistyped_model_directory_says_it_does_not_exist(tmp_path):
    from skugen.export.pipeline import PipelineConfig, run_pipeline

    with pytest.raises(InputError, match="does not exist.*Check the path"):
        custom.detect_format(str(tmp_path / "runs" / "upp"))
    with pytest.raises(InputError, match="does not exist"):
        run_pipeline(PipelineConfig(model=str(tmp_path / "runs" / "upp"), out=str(tmp_path / "o")))


def test_convtranspose_model_reports_its_float_layer(tmp_path):
    from skugen.export.bundle import BundleConfig, export_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = custom.import_model(f"{FIX}:make_convt_upscaler", {"kind": "enhancer"}, tmp_path / "m")
    b = export_bundle(d, tmp_path / "b", BundleConfig(int8=True, calib_n=16, eval_n=8, openvino=False))
    q = json.loads((b / "manifest.json").read_text())["quality"]["int8"]
    rep = json.loads((b / "reports" / "quantization.json").read_text())
    if q["budget_ok"]:
        assert [f["op"] for f in q["float_layers"]] == ["ConvTranspose"], q["float_layers"]
        assert "all" not in rep["message"].split("layers")[0] and "ConvTranspose" in rep["message"]
        assert not q["kept_float"]  # the gate kept nothing float: the quantizer/runtime did


# ----------------------------------------------------------------------------- the student-vs-teacher check on the user's data


def _psnr_ref(student_out, teacher_out, lo: float, hi: float) -> float:
    """Mean per-image PSNR (scikit-image, data_range 255) of model outputs in [lo, hi] mapped to [0, 255]."""
    skm = pytest.importorskip("skimage.metrics")
    to = lambda y: np.clip((np.asarray(y, np.float64) - lo) * 255.0 / (hi - lo), 0.0, 255.0)  # noqa: E731
    s, t = to(student_out), to(teacher_out)
    return float(np.mean([skm.peak_signal_noise_ratio(ti, si, data_range=255) for si, ti in zip(s, t)]))


def test_compress_checks_the_student_on_the_users_held_out_data(tmp_path):
    """With --data, compress compares student and teacher on the user's gate + confirm samples (never train or
    calib, never skugen's own latents): the card says so, and the number is what those samples give."""
    from skugen.export import userdata

    rng = np.random.default_rng(0)
    z = (rng.standard_normal((40, 16)) * 0.5).astype(np.float32)   # this user's latents are not N(0, 1)
    np.savez(tmp_path / "in.npz", z=z, labels=np.arange(40) % 4)
    teacher_dir = custom.import_model(f"{FIX}:make_generator", GEN_SPEC, tmp_path / "t", data=str(tmp_path / "in.npz"))
    st = compress(str(teacher_dir), CompressConfig(out=str(tmp_path / "s"), target_macs_frac=0.5, distill_steps=4,
                                                   seed=0, distill_batch=8)).out
    m = json.loads((st / "card.json").read_text())["metrics"]
    spec = userdata.parse_data(tmp_path / "in.npz")
    parts = userdata.Source(spec).parts
    held = sorted(int(i) for i in parts["gate"] + parts["confirm"])
    assert "your arrays" in m["inputs"] and "gate + confirm" in m["inputs"] and m["n"] == len(held)
    # recomputed by hand on exactly those samples
    (x_z, x_oh), _ = userdata.eval_inputs(spec, "generator", n_classes=4)
    assert sorted(np.flatnonzero(np.isin(z, x_z.numpy()).all(1)).tolist()) == held
    assert not set(held) & {int(i) for i in parts["train"] + parts["calib"]}
    student, _ = ckpt.load_model(st)
    teacher, _ = ckpt.load_model(teacher_dir)
    with torch.no_grad():
        ref = _psnr_ref(student(x_z, x_oh).numpy(), teacher(x_z, x_oh).numpy(), -1.0, 1.0)  # tanh output
    assert np.isfinite(ref) and m["psnr_vs_teacher_db"] == pytest.approx(ref, abs=1e-6)
    assert m["baseline"]["warning"] is None and m["baseline"]["clipped_fraction"] == 0.0


def test_enhancer_check_uses_the_users_photos(tmp_path, need_grocery):
    from skugen.export import data, userdata

    paths = [p for p, _, _ in data.grocery_split("test")][:12]
    (tmp_path / "photos").mkdir()
    for i, p in enumerate(paths):
        (tmp_path / "photos" / f"{i:02d}.jpg").write_bytes(p.read_bytes())
    teacher, _ = ckpt.load_model(custom.import_model(f"{FIX}:make_upscaler", UP_SPEC, tmp_path / "t",
                                                    data=str(tmp_path / "photos")))
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(1.05)
    spec = userdata.parse_data(tmp_path / "photos")
    q = custom.quality_vs_teacher(teacher, student, n=6, data=spec)
    assert "your images" in q["inputs"] and "gate + confirm parts (3 images), 6 crops 48 px LR" in q["inputs"]
    (x,), _ = userdata.eval_inputs(spec, "enhancer", n=6)        # the same crops, from those 3 photos only
    with torch.no_grad():
        ref = _psnr_ref(student(x).numpy(), teacher(x).numpy(), 0.0, 1.0)  # enhancers output [0, 1]
    assert q["n"] == 6 and np.isfinite(ref) and q["psnr_vs_teacher_db"] == pytest.approx(ref, abs=1e-6)
    assert "baseline" not in q  # enhancers get theirs (bicubic) at export


def test_generator_outputs_beyond_the_declared_range_warn(tmp_path):
    """The clip check: a tanh generator declared [0, 1] maps to [-3, 1], so about half its values are clipped."""
    from skugen.export import userdata

    proj = _project(tmp_path / "proj")
    wrong = custom.import_model(f"{proj / 'nets.py'}:make", {**PROJ_SPEC, "output_range": [0, 1]}, tmp_path / "w")
    teacher, _ = ckpt.load_model(wrong)
    with pytest.warns(userdata.BaselineWarning, match="outside the I/O spec's output_range"):
        q = custom.quality_vs_teacher(teacher, teacher, n=32)
    assert 0.3 < q["baseline"]["clipped_fraction"] < 0.7
    right, _ = ckpt.load_model(custom.import_model(f"{proj / 'nets.py'}:make", PROJ_SPEC, tmp_path / "r"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", userdata.BaselineWarning)
        q = custom.quality_vs_teacher(right, right, n=32)
    assert q["baseline"]["clipped_fraction"] == 0.0 and q["baseline"]["warning"] is None
    # the threshold, and values AT the range ends (white product shots) are not clipping
    assert userdata.clipped_fraction(np.array([-1.0, 1.0, 1.0 + 1 / 255, 0.0])) == 0.0
    assert userdata.clipped_fraction(np.array([-1.1, 1.0, 1.2, 0.0])) == 0.5
