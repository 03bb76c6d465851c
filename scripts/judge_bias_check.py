"""Is the cGAN student's class fidelity / FID-proxy inflated because it was distilled in the judge's feature space?

The shipped student's distillation (w_percep=1.0) adds an L1 loss on fmnist-classifier's penultimate features,
the same network that defines the FID-proxy and judges class fidelity. This scores teacher and student with the
shipped judge AND with an independently trained classifier (another seed, never used in any training):

    skugen train fmnist-classifier --steps 1500 --seed 1 --threads 2 --out runs/judge-seed1
    python scripts/judge_bias_check.py runs/judge-seed1

Writes benchmarks/results/cgan_independent_judge.json.
"""
import json, sys
from pathlib import Path
import torch
from skugen.export import ckpt, zoo
from skugen.io import atomic_write_json
from skugen.report import machine

torch.set_num_threads(2)
judge_dir = sys.argv[1]
judges = {"fmnist-classifier (shipped; in the student's distillation loss)": zoo.load(zoo.classifier_dir())[0],
          f"independent: {judge_dir}": ckpt.load_model(judge_dir)[0]}
acc = json.loads((Path(judge_dir) / "card.json").read_text()).get("metrics", {}).get("accuracy")
rows = []
for jname, clf in judges.items():
    for m in ("fmnist-cgan", "fmnist-cgan-student"):
        r = zoo.eval_generator(zoo.load(m)[0], quick=False, clf=clf)
        rows.append({"judge": jname, "model": m, "class_fidelity": round(r["class_fidelity"], 4),
                     "fid_proxy": round(r["fid_proxy"], 4), "fid_proxy_real_vs_real": round(r["fid_proxy_real_vs_real"], 4)})
        print(rows[-1], flush=True)
out = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cgan_independent_judge.json"
atomic_write_json(out, {"what": __doc__.strip().splitlines()[0], "command": f"python scripts/judge_bias_check.py {judge_dir}",
                        "independent_judge_test_accuracy": acc, "n_generated": 10000, "rows": rows,
                        "machine": machine(torch=torch.__version__)})
print("wrote", out)
