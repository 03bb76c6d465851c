#!/usr/bin/env bash
# Every GPU check of skugen in one go, within BUDGET seconds (default 480 = 8 minutes):
#   1. the CUDA kernels: correctness vs numpy, strided vs x4 timing, the faster variant per op written to
#      kernels/kernel_choice.json (the launcher's default);
#   2. eager PyTorch CUDA FP32/FP16 latency of the zoo's teachers and students (the user's baseline);
#   3. TensorRT engines (build, verify: tests/sdk/backends/test_tensorrt_gpu.py; then `skugen bench` of the
#      shipped student's engines vs ONNX Runtime) ONLY where TensorRT
#      is usable; otherwise a recorded skip with the reason;
#   4. the remaining `gpu`-marked kernel tests.
#
#   bash scripts/gpu_check.sh                      # results under ${OUT:-benchmarks/gpu}
#   bash scripts/gpu_check.sh --dry-run            # print the plan, run nothing (CPU-testable)
#   PYCUDA_SDIST=/path/pycuda-2025.1.tar.gz WHEELS=.whl bash scripts/gpu_check.sh
#
# Environment:
#   OUT            results folder (default benchmarks/gpu)
#   PYTHON         interpreter (default python3)
#   PYCUDA_SDIST   pycuda source archive, built here with nvcc when pycuda is missing (no internet needed)
#   WHEELS         folder of extra wheels to install first, offline (e.g. pycuda's pytools/platformdirs/mako)
#   BUDGET         seconds for the whole run (default 480); each step gets at most what is left
#   STEP_TIMEOUT   seconds per step (default 300)
#   CHOICE         where the kernel choice goes (default kernels/kernel_choice.json; "" = do not write)
#   PYTEST_ARGS    extra pytest arguments (e.g. "-x" or "-k tensorrt")
#
# Never stops at the first failure: each step is logged, timed and recorded in summary.json.
# Steps that cannot run here (no TensorRT, no pycuda) are recorded as "skip" with the reason.
# Exit status = number of failed steps. Files written (few, for tools that fetch at most 8):
#   gpu_check.log, summary.json, kernels_gpu.json, eager_torch.json, trt_bench_fmnist-cgan-student.json (TensorRT only).
set -u

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-benchmarks/gpu}
BUDGET=${BUDGET:-480}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
CHOICE=${CHOICE-kernels/kernel_choice.json}
if [ "$DRY" = 1 ]; then
  echo "gpu_check plan (dry run; budget ${BUDGET}s, step timeout ${STEP_TIMEOUT}s, results -> $OUT_DIR):"
  echo "  machine   nvidia-smi, nvcc --version, python"
  echo "  env       versions; skugen.backends.tensorrt.status()"
  echo "  kernels   $PY scripts/gpu_kernels.py $OUT_DIR/kernels_gpu.json${CHOICE:+ --choose $CHOICE}   (needs pycuda)"
  echo "  eager     $PY scripts/gpu_eager.py $OUT_DIR/eager_torch.json   (needs torch with CUDA)"
  echo "  tensorrt  $PY -m pytest -m gpu tests/sdk/backends/test_tensorrt_gpu.py   (only when TensorRT is usable)"
  echo "  trt-bench $PY -m skugen.cli bench fmnist-cgan-student --backends onnxruntime,tensorrt -> $OUT_DIR/trt_bench_fmnist-cgan-student.json   (TensorRT + Fashion-MNIST)"
  echo "  pytest-gpu $PY -m pytest -m gpu tests/kernels"
  exit 0
fi
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
FAILS=0
STEPS=()   # JSON objects, one per step

export PYTHONUNBUFFERED=1 SKUGEN_NO_PROGRESS=1 SKUGEN_GPU_OUT="$OUT_DIR"
# Timing caches and compiled kernels of this run stay out of the user's cache (and out of $OUT).
export SKUGEN_CACHE_DIR=${SKUGEN_CACHE_DIR:-${TMPDIR:-/tmp}/skugen-gpu-check-cache}

log() { printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$LOG"; }

json_str() { # minimal JSON string escaping for messages
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; printf '"%s"' "$s"
}

record() { # record NAME STATUS RC SECONDS MESSAGE
  STEPS+=("{\"step\": $(json_str "$1"), \"status\": \"$2\", \"rc\": $3, \"seconds\": $4, \"message\": $(json_str "$5")}")
  if [ "$2" = fail ]; then FAILS=$((FAILS + 1)); fi
  log "-- $1: $2 (rc $3, ${4}s) $5"
}

run() { # run NAME CMD...: runs with a timeout, output to the console and the log; returns the exit code
  local name=$1; shift
  log "== $name: $*"
  local t0=$SECONDS rc left=$((BUDGET - SECONDS)) limit=$STEP_TIMEOUT
  if [ "$left" -lt 10 ]; then
    log "   $name: not run, the ${BUDGET}s budget is spent"; LAST_SECONDS=0; return 124
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  if command -v timeout >/dev/null 2>&1; then
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"; rc=${PIPESTATUS[0]}
  else
    "$@" 2>&1 | tee -a "$LOG"; rc=${PIPESTATUS[0]}
  fi
  LAST_SECONDS=$((SECONDS - t0))
  [ "$rc" = 124 ] && log "   $name timed out after ${limit}s"
  return "$rc"
}

step() { # step NAME CMD...: run and record pass/fail; returns the command's exit code
  local name=$1; shift
  if run "$name" "$@"; then record "$name" pass 0 "$LAST_SECONDS" ""
  else local rc=$?; record "$name" fail "$rc" "$LAST_SECONDS" "see gpu_check.log"; return "$rc"; fi
}

has_py_module() { "$PY" -c "import $1" >/dev/null 2>&1; }

# ----------------------------------------------------------------------------- 1. machine
log "skugen GPU check -> $OUT_DIR"
run machine bash -c "nvidia-smi || echo 'nvidia-smi: not found'; (nvcc --version || echo 'nvcc: not found') | tail -2; $PY --version; uname -a"
if ! has_py_module numpy; then
  record python fail 1 0 "$PY cannot import numpy"
fi

# ----------------------------------------------------------------------------- 2. offline installs
if [ -n "${WHEELS:-}" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  step wheels "$PY" -m pip install -q --no-index --no-deps --no-compile "$WHEELS"/*.whl
fi

if has_py_module pycuda.driver; then
  log "pycuda: already installed"
elif [ -n "${PYCUDA_SDIST:-}" ] && [ -e "${PYCUDA_SDIST}" ]; then
  if [ -z "${CUDA_ROOT:-}" ] && command -v nvcc >/dev/null 2>&1; then
    CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc)")"); export CUDA_ROOT
  fi
  export PATH="${CUDA_ROOT:-/usr/local/cuda}/bin:$PATH"
  step pycuda-build "$PY" -m pip install -q --no-build-isolation --no-index --no-deps "$PYCUDA_SDIST"
  if ! has_py_module pycuda.driver; then
    run pycuda-import "$PY" -c "import pycuda.driver" || true
    record pycuda-import fail 1 0 "pycuda built but does not import (missing pytools/platformdirs/mako? pass WHEELS=)"
  fi
else
  record pycuda skip 0 0 "pycuda missing and PYCUDA_SDIST not set: CUDA kernel and TensorRT checks will skip"
fi

if "$PY" -c "import skugen, skugen.backends.tensorrt" >/dev/null 2>&1; then
  log "skugen: importable"
else
  step skugen-install "$PY" -m pip install -q -e . --no-deps --no-build-isolation
fi

# ----------------------------------------------------------------------------- 3. what is here
run env "$PY" - <<'EOF' || true
import importlib, json, os, platform
def ver(m):
    try:
        mod = importlib.import_module(m)
        return getattr(mod, "__version__", None) or getattr(mod, "VERSION_TEXT", None) or "present"
    except Exception as e:
        return f"absent ({type(e).__name__}: {str(e)[:120]})"
info = {"python": platform.python_version(), "machine": platform.machine()}
for m in ("numpy", "onnxruntime", "torch", "pycuda", "tensorrt", "skugen"):
    info[m] = ver(m)
try:
    from skugen.backends.tensorrt import current_device, status
    info["tensorrt_status"] = status()
    if info["tensorrt_status"]["usable"]:
        info["gpu"] = current_device()
except Exception as e:
    info["tensorrt_backend"] = f"unavailable: {e}"
try:
    import pycuda.driver as cuda
    cuda.init()
    d = cuda.Device(0)
    info["cuda_device"] = {"name": d.name(), "cc": "%d.%d" % d.compute_capability(), "memory": d.total_memory()}
except Exception as e:
    info["cuda_device"] = f"unavailable: {e}"
print(json.dumps(info, indent=1, default=str))
json.dump(info, open(os.path.join(os.environ["SKUGEN_GPU_OUT"], "env.json"), "w"), indent=1, default=str)
EOF

# ----------------------------------------------------------------------------- 4. CUDA kernels (+ the default variant)
if ! has_py_module pycuda.driver; then
  record kernels skip 0 0 "pycuda unavailable: scripts/gpu_kernels.py not run (set PYCUDA_SDIST to build it)"
else
  step kernels "$PY" scripts/gpu_kernels.py "$OUT_DIR/kernels_gpu.json" --cases 24 --iters 10 ${CHOICE:+--choose "$CHOICE"}
fi

# ----------------------------------------------------------------------------- 5. eager PyTorch baseline
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  step eager "$PY" scripts/gpu_eager.py "$OUT_DIR/eager_torch.json" --iters 30
else
  record eager skip 0 0 "torch with CUDA is not importable here: no eager baseline"
fi

# ----------------------------------------------------------------------------- 6. TensorRT engines (only if usable)
TRT_WHY=$("$PY" -c "from skugen.backends.tensorrt import unavailable_reason as u; print(u() or '')" 2>&1 | tail -1)
if [ -z "$TRT_WHY" ]; then
  # shellcheck disable=SC2086
  step tensorrt "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} tests/sdk/backends/test_tensorrt_gpu.py
  # speed is a bench run, not a test: the shipped student's engines beside ONNX Runtime, one run, same inputs
  TRT_BUNDLE="${SKUGEN_CACHE_DIR}/trt-bench/fmnist-cgan-student"
  if ! "$PY" -c "from skugen.export.data import find_fmnist; find_fmnist()" >/dev/null 2>&1; then
    record trt-bench skip 0 0 "Fashion-MNIST not found (apt-get install dataset-fashion-mnist): the INT8 gate needs it"
  elif step trt-export "$PY" -m skugen.cli export fmnist-cgan-student --out "$TRT_BUNDLE" --int8; then
    step trt-bench "$PY" -m skugen.cli bench "$TRT_BUNDLE" --backends onnxruntime,tensorrt --precisions fp32,fp16,int8 \
      --batch 1,16 --repeats 3 --json "$OUT_DIR/trt_bench_fmnist-cgan-student.json"
  fi
else
  record tensorrt skip 0 0 "TensorRT not usable here: $TRT_WHY"
fi

# ----------------------------------------------------------------------------- 7. the other gpu-marked tests
# shellcheck disable=SC2086
if run pytest-gpu "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} ${GPU_TEST_PATHS:-tests/kernels}; then
  record pytest-gpu pass 0 "$LAST_SECONDS" ""
else
  rc=$?
  if [ "$rc" = 5 ]; then record pytest-gpu fail 5 "$LAST_SECONDS" "pytest collected no gpu tests"
  else record pytest-gpu fail "$rc" "$LAST_SECONDS" "see gpu_check.log"; fi
fi

# ----------------------------------------------------------------------------- summary
# The env.json written above is folded into summary.json (fewer files to fetch).
{
  printf '{\n  "failures": %d,\n  "out": %s,\n  "steps": [\n' "$FAILS" "$(json_str "$OUT_DIR")"
  for i in "${!STEPS[@]}"; do
    sep=","; [ "$i" = $((${#STEPS[@]} - 1)) ] && sep=""
    printf '    %s%s\n' "${STEPS[$i]}" "$sep"
  done
  printf '  ],\n  "env": '
  if [ -s "$OUT_DIR/env.json" ]; then cat "$OUT_DIR/env.json"; else printf 'null'; fi
  printf '\n}\n'
} >"$OUT_DIR/summary.json"
rm -f "$OUT_DIR/env.json"
log "done: $FAILS failed step(s); summary in $OUT_DIR/summary.json"
exit "$FAILS"
