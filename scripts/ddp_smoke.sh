#!/usr/bin/env bash
# DDP smoke check for distillation: a tiny random cGAN teacher, its 50%-pruned student, and
# `skugen distill` (python -m skugen.cli distill) under torchrun with NPROC processes (gloo on CPU, nccl on GPUs).
# Passes when every rank ran and all ranks end with the same parameter digest.
#
#   scripts/ddp_smoke.sh            # 2 CPU processes
#   NPROC=4 STEPS=20 scripts/ddp_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NPROC=${NPROC:-2}
STEPS=${STEPS:-4}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" - "$WORK" <<'EOF'
import sys, torch
from skugen.export import ckpt, models, prune
from skugen.export.train import recalibrate_bn
torch.manual_seed(0)
t = models.Generator(models.CGANConfig(base=64, stages=((32, 32), (32, 32), (16, 16))))
recalibrate_bn(t, n_batches=2, batch=32)
ckpt.save_model(t, f"{sys.argv[1]}/teacher", {"name": "smoke-teacher"})
ckpt.save_model(prune.prune_channels(t, prune.PruneConfig(ratio=0.5)).model, f"{sys.argv[1]}/student", {})
EOF

SKUGEN_NO_PROGRESS=1 OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
    -m skugen.cli distill --teacher "$WORK/teacher" --student "$WORK/student" --out "$WORK/out" \
    --steps "$STEPS" --batch $((4 * NPROC)) --w-percep 0 --bn-recal-batches 1 --threads 1 | tee "$WORK/log"

ranks=$(grep -c '^\[distill rank' "$WORK/log" || true)
digests=$(grep '^\[distill rank' "$WORK/log" | awk '{print $NF}' | sort -u | wc -l)
if [[ "$ranks" == "$NPROC" && "$digests" == 1 ]]; then
    echo "ddp_smoke: OK ($NPROC ranks, parameters in sync)"
else
    echo "ddp_smoke: FAILED (ranks reporting: $ranks of $NPROC, distinct digests: $digests)" >&2
    exit 1
fi
