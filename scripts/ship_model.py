"""Ship a trained model into the zoo: export/zoo/NAME/{model.safetensors, card.json}.

Re-evaluates the weights (full + quick subset) so the card's metrics are exactly what
`skugen eval NAME` recomputes; tests compare the quick subset against `metrics_quick`.

    python scripts/ship_model.py runs/fmnist-cgan fmnist-cgan
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from skugen.export import ckpt, zoo
from skugen.io import atomic_file, atomic_write_json, sha256_file


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("name")
    ap.add_argument("--skip-full", action="store_true", help="keep the card's existing full metrics")
    a = ap.parse_args()
    src = Path(a.run_dir)
    model, card = ckpt.load_model(src)
    dst = zoo.ZOO_DIR / a.name
    dst.mkdir(parents=True, exist_ok=True)
    with atomic_file(dst / "model.safetensors") as af:  # the shipped weights: never torn, never beside a stale card
        shutil.copyfile(src / "model.safetensors", af.tmp)
    t = time.time()
    if not a.skip_full or "metrics" not in card:
        card["metrics"] = zoo.evaluate_model(model, card, quick=False)
    card["metrics_quick"] = zoo.evaluate_model(model, card, quick=True)
    card["eval_wall_time_s"] = round(time.time() - t, 1)
    card["name"] = a.name
    card["weights"]["sha256"] = sha256_file(dst / "model.safetensors")
    atomic_write_json(dst / "card.json", card)
    print(json.dumps({"name": a.name, "metrics": card["metrics"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
