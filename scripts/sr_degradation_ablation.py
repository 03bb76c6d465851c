"""Where the enhancer's gain over bicubic comes from: PSNR-Y of the shipped grocery-sr2x vs bicubic on 96 GroceryStore
val crops (128 px HR) degraded with each part of the degradation chain alone, all of it, and none of it.

    python scripts/sr_degradation_ablation.py [MODEL_DIR]   # default: the shipped grocery-sr2x (numbers in the #3 notes)

For the shipped model it also writes benchmarks/results/sr_degradation_ablation.json.
"""
import json
from pathlib import Path
import numpy as np, torch
from dataclasses import replace
from skugen.evaluate import bicubic_upscale
from skugen.export import data, zoo
torch.set_num_threads(1)
import sys; m, _ = zoo.load(sys.argv[1]) if len(sys.argv) > 1 else zoo.load("grocery-sr2x")
_, hr = data.sr_eval_set("val", 96)  # the clean centre crops; each variant degrades them itself
base = data.DegradeConfig()
variants = {
    "full": base,
    "blur only": replace(base, gauss_sigma=(0, 0), poisson_prob=0.0, jpeg_quality=(100, 100)),
    "noise only": replace(base, blur_sigma=(0, 0), jpeg_quality=(100, 100)),
    "jpeg only": replace(base, blur_sigma=(0, 0), gauss_sigma=(0, 0), poisson_prob=0.0),
    "none (bicubic down)": replace(base, blur_sigma=(0, 0), gauss_sigma=(0, 0), poisson_prob=0.0, jpeg_quality=(100, 100)),
}
rows = []
for name, cfg in variants.items():
    rng = np.random.default_rng(7)
    lr = np.stack([data.degrade(h, rng, cfg) for h in hr])
    q = zoo.sr_quality(zoo.enhance_np(m, lr), hr)["psnr_y"]; b = zoo.sr_quality(bicubic_upscale(lr, 2), hr)["psnr_y"]
    print(f"{name:22s} model {q:.2f}  bicubic {b:.2f}  gain {q-b:+.2f}")
    rows.append({"degradation": name, "psnr_y": round(q, 4), "bicubic_psnr_y": round(b, 4), "gain_db": round(q - b, 4)})
if len(sys.argv) == 1:
    card = json.loads((zoo.ZOO_DIR / "grocery-sr2x" / "card.json").read_text())
    out = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sr_degradation_ablation.json"
    from skugen.io import atomic_write_json
    from skugen.report import machine
    atomic_write_json(out, {"what": "PSNR-Y gain of grocery-sr2x over bicubic, per part of the degradation chain",
                            "command": "python scripts/sr_degradation_ablation.py", "model_sha256": card["weights"]["sha256"],
                            "set": "96 GroceryStore val photos, centre 128 px crops, degradation rng seed 7",
                            "machine": machine(torch=torch.__version__),
                            "rows": rows})
    print("wrote", out)
