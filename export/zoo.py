"""The shipped model zoo: weights + model cards under export/zoo/NAME/, and their evaluation.

`skugen zoo list --json` lists them; `skugen eval NAME --json` recomputes the
card's metrics from the weights. FID here is always the "FID-proxy
(fmnist-classifier features)": a Frechet distance on our own classifier's
penultimate features, NOT Inception FID (nothing can be downloaded here).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skugen.errors import ModelError
from skugen.evaluate import FID_NAME, bicubic_upscale, class_fidelity, fid_proxy, sr_quality

from . import ckpt, data, models
from .judge import TorchJudge

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


def load_judge(path: str | os.PathLike | None = None, **kw) -> TorchJudge:
    """The judge for a classifier model dir or zoo name (None: the zoo's fmnist-classifier); ModelError if the
    directory holds another kind of model."""
    d = resolve(path) if path is not None else classifier_dir()
    model, card = ckpt.load_model(d)
    fam = card["config"].get("family")
    if fam != "classifier":
        raise ModelError(f"{d} is a {fam!r} model, not a classifier; pass a classifier model dir "
                         "(e.g. the zoo's fmnist-classifier).")
    return TorchJudge(model, card, d, **kw)


def names() -> list[str]:
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "card.json").is_file())


def resolve(name_or_dir: str | os.PathLike) -> Path:
    """A zoo name or a model directory -> the model directory."""
    p = Path(name_or_dir)
    if (p / "card.json").is_file():
        return p
    if (ZOO_DIR / str(name_or_dir) / "card.json").is_file():
        return ZOO_DIR / str(name_or_dir)
    raise ModelError(f"{name_or_dir!r} is neither a zoo model ({', '.join(names()) or 'none shipped'}) nor a "
                     "directory with card.json + model.safetensors.")


def family_of(name_or_dir) -> str | None:
    """The model family a zoo name or model directory's card names; None when it is neither (the caller's own
    loader then says what is wrong)."""
    try:
        return ckpt.read_card(resolve(name_or_dir)).get("config", {}).get("family")
    except ModelError:
        return None


def load(name_or_dir) -> tuple[torch.nn.Module, dict]:
    return ckpt.load_model(resolve(name_or_dir))


def classifier_dir() -> Path:
    return resolve(os.environ.get("SKUGEN_CLASSIFIER", "fmnist-classifier"))

# ----------------------------------------------------------------------------- evaluation


def eval_classifier(model, quick: bool = False) -> dict:
    x, y = data.load_fmnist("test")
    n = 2000 if quick else len(x)
    pred = TorchJudge(model, batch=500).outputs(data.fmnist_to_model(x[:n]))[1]
    return {"accuracy": class_fidelity(pred, y[:n])["value"], "n_test": n, "split": "test"}


@torch.no_grad()
def generate(gen, labels: np.ndarray, seed: int, batch: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(labels), gen.cfg.z_dim, generator=g)
    oh = F.one_hot(torch.from_numpy(labels.astype(np.int64)), gen.cfg.n_classes).float()
    return torch.cat([gen(z[i:i + batch], oh[i:i + batch]) for i in range(0, len(labels), batch)])


def eval_generator(gen, quick: bool = False, seed: int = 1234, clf=None) -> dict:
    """Class fidelity and FID-proxy (vs Fashion-MNIST test features) of `seed`'s images; `clf` a classifier
    module or TorchJudge (None: the zoo's fmnist-classifier)."""
    judge = clf if isinstance(clf, TorchJudge) else TorchJudge(clf if clf is not None else load(classifier_dir())[0],
                                                                batch=500)
    per_class = 200 if quick else 1000
    n_cls = gen.cfg.n_classes
    labels = np.repeat(np.arange(n_cls), per_class)
    imgs = generate(gen.eval(), labels, seed)                  # model space, [-1, 1]: not rounded to uint8
    f_gen, pred = judge.outputs(imgs)
    n = per_class * n_cls
    fid = class_fidelity(pred, labels, n_cls)
    return {
        "class_fidelity": fid["value"],
        "class_fidelity_per_class": {data.FMNIST_CLASSES[c]: round(v, 4) for c, v in enumerate(fid["per_class"])},
        "fid_proxy": fid_proxy(f_gen, judge.reference_features(n)),
        "fid_proxy_real_vs_real": judge.real_vs_real(n, sort=False),
        "fid_name": FID_NAME,
        "n_generated": int(n), "seed": seed, "reference": "Fashion-MNIST test features",
    }


@torch.no_grad()
def enhance_np(model, lr: np.ndarray, batch: int = 16) -> np.ndarray:
    out = []
    for i in range(0, len(lr), batch):
        x = torch.from_numpy(lr[i:i + batch]).permute(0, 3, 1, 2).float() / 255.0
        y = model(x).clamp(0, 1).mul(255.0).round().byte().permute(0, 2, 3, 1).numpy()
        out.append(y)
    return np.concatenate(out)


def eval_enhancer(model, quick: bool = False) -> dict:
    res: dict = {"convention": {"y_channel": "MATLAB BT.601", "crop_border": 2, "data_range": 255,
                                "ssim": "11x11 Gaussian sigma 1.5, valid (BasicSR)"}}
    sets = (("test", "test", 40 if quick else 300, None), ("iconic", "iconic", 20 if quick else 81, None),
            # the test photos with NO degradation: an enhancer must not make already clean photos worse
            ("test_clean", "test", 40 if quick else 300, data.CLEAN_DEGRADE))
    for key, which, n, deg in sets:
        lr, hr = data.sr_eval_set(which, n, cfg=deg)
        q = sr_quality(enhance_np(model.eval(), lr), hr)
        b = sr_quality(bicubic_upscale(lr, 2), hr)
        res[key] = {**q, **{f"bicubic_{k}": v for k, v in b.items()}, "n": int(len(lr)),
                    "hr_size": list(hr.shape[1:3]), "hr": "centre crop" if which == "test" else "whole image",
                    "input": "plain bicubic downscale" if deg is not None else "degraded (blur, noise, JPEG)"}
    # headline numbers (GroceryStore test) at top level, as `skugen eval --json` promises
    for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"):
        res[k] = res["test"][k]
    return res


def eval_diffusion(model, quick: bool = False, seed: int = 1234, clf=None, steps: int | None = None,
                   guidance: float | None = None, batch: int = 250) -> dict:
    """Class fidelity on the three prompt sets of export/prompts.py (held-in, held-out templates, held-out
    synonyms) and FID-proxy of the held-in images vs Fashion-MNIST test features; eager PyTorch, the model's
    default steps and guidance unless given."""

    from . import prompts

    judge = clf if isinstance(clf, TorchJudge) else TorchJudge(clf if clf is not None else load(classifier_dir())[0],
                                                                batch=500)
    tok = prompts.build_vocab()
    null = torch.tensor(tok.null())
    model.eval()
    res: dict = {"steps": steps or model.cfg.steps, "guidance": model.cfg.guidance if guidance is None else guidance,
                 "sampler": "euler", "seed": seed, "fid_name": FID_NAME, "reference": "Fashion-MNIST test features"}
    for which, n in (("held_in", 200 if quick else 1000), ("held_out", 100 if quick else 500),
                     ("held_out_synonyms", 100 if quick else 500)):
        texts, labels = prompts.eval_prompts(which, n, seed)
        ids, unknown = tok.encode_batch(texts)
        imgs = torch.cat([model.sample(torch.from_numpy(ids[i:i + batch]), null, steps, guidance, seed=seed + i)
                          for i in range(0, n, batch)])
        f_gen, pred = judge.outputs(imgs)
        fid = class_fidelity(pred, labels, len(prompts.CLASS_NAMES))
        r = {"class_fidelity": fid["value"], "n": n,
             "class_fidelity_per_class": {data.FMNIST_CLASSES[c]: round(v, 4) for c, v in enumerate(fid["per_class"])},
             "unknown_words": sorted({w for u in unknown for w in u}), "example_prompts": texts[:10]}
        if which == "held_in":
            r["fid_proxy"] = fid_proxy(f_gen, judge.reference_features(n))
            r["fid_proxy_real_vs_real"] = judge.real_vs_real(n, sort=False)
        res[which] = r
    res["class_fidelity"] = res["held_in"]["class_fidelity"]       # headline numbers at top level
    res["fid_proxy"] = res["held_in"]["fid_proxy"]
    return res


def evaluate_model(model, card: dict, quick: bool = False) -> dict:
    fam = card["config"]["family"]
    if fam == "diffusion":
        return eval_diffusion(model, quick)
    if fam == "classifier":
        return eval_classifier(model, quick)
    if fam == "cgan":
        return eval_generator(model, quick)
    if fam == "sr":
        return eval_enhancer(model, quick)
    raise ModelError(f"no evaluation for family {fam!r}")


def evaluate_dir(path, quick: bool = False) -> dict:
    model, card = ckpt.load_model(resolve(path))
    return evaluate_model(model, card, quick)

def model_table() -> list[dict]:
    """One row per shipped model (name, kind, family, params, MACs, sha256, metrics, path), from the cards."""
    rows = []
    for n in names():
        c = json.loads((ZOO_DIR / n / "card.json").read_text())
        rows.append({"name": n, "kind": c.get("kind"), "family": c["config"]["family"], "params": c.get("params"),
                     "macs": c.get("macs"), "sha256": c.get("weights", {}).get("sha256"),
                     "metrics": c.get("metrics", {}), "path": str(ZOO_DIR / n)})
    return rows


def evaluate_named(name_or_dir, quick: bool = False) -> dict:
    """`skugen eval`: a model's metrics re-computed from its weights, next to the ones its card records."""
    path = resolve(name_or_dir)
    model, card = ckpt.load_model(path)
    m = evaluate_model(model, card, quick)
    return {"name": card.get("name", str(name_or_dir)), "path": str(path), "quick": quick, "metrics": m,
            "card_metrics": card.get("metrics"), "params": models.count_params(model)}
