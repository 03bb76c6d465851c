#!/usr/bin/env bash
# Every GPU check of skugen in one go: CUDA kernels (correctness + timing), all `gpu`-marked tests
# (kernels, TensorRT engines: build, verify, mismatch, timing vs ONNX Runtime).
#
#   bash scripts/gpu_check.sh                      # results under ${OUT:-benchmarks/gpu}
#   PYCUDA_SDIST=/path/pycuda-2025.1.tar.gz WHEELS=.whl bash scripts/gpu_check.sh
#
# Environment:
#   OUT            results folder (default benchmarks/gpu)
#   PYTHON         interpreter (default python3)
#   PYCUDA_SDIST   pycuda source archive, built here with nvcc when pycuda is missing (no internet needed)
#   WHEELS         folder of extra wheels to install first, offline (e.g. pycuda's pytools/platformdirs/mako)
#   STEP_TIMEOUT   seconds per step (default 900)
#   PYTEST_ARGS    extra pytest arguments (e.g. "-x" or "-k tensorrt")
#
# Never stops at the first failure: each step is logged, timed and recorded in summary.json.
# Steps that cannot run here (no TensorRT, no pycuda) are recorded as "skip" with the reason.
# Exit status = number of failed steps. Files written (few, for tools that fetch at most 8):
#   gpu_check.log, summary.json, kernels_gpu.json, trt_bench_<bundle>.json (when TensorRT is present).
set -u

cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-benchmarks/gpu}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
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
  local t0=$SECONDS rc
  if command -v timeout >/dev/null 2>&1; then
    timeout --kill-after=30 "$STEP_TIMEOUT" "$@" 2>&1 | tee -a "$LOG"; rc=${PIPESTATUS[0]}
  else
    "$@" 2>&1 | tee -a "$LOG"; rc=${PIPESTATUS[0]}
  fi
  LAST_SECONDS=$((SECONDS - t0))
  [ "$rc" = 124 ] && log "   $name timed out after ${STEP_TIMEOUT}s"
  return "$rc"
}

step() { # step NAME CMD...: run and record pass/fail
  local name=$1; shift
  if run "$name" "$@"; then record "$name" pass 0 "$LAST_SECONDS" ""
  else local rc=$?; record "$name" fail "$rc" "$LAST_SECONDS" "see gpu_check.log"; fi
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
    from skugen.backends.tensorrt import _require, current_device
    _require()
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

if has_py_module tensorrt; then
  log "TensorRT: present; the TensorRT tests build and time engines"
else
  record tensorrt skip 0 0 "tensorrt is not installed here: TensorRT engine tests skip (pip install 'skugen[tensorrt]')"
fi

# ----------------------------------------------------------------------------- 4. CUDA kernels
if [ -f scripts/gpu_kernels.py ]; then
  if ! has_py_module pycuda.driver; then
    record kernels skip 0 0 "pycuda unavailable: scripts/gpu_kernels.py not run"
  elif "$PY" scripts/gpu_kernels.py --help 2>/dev/null | grep -q -- '--out'; then
    step kernels "$PY" scripts/gpu_kernels.py --out "$OUT_DIR/kernels_gpu.json"
  else
    step kernels "$PY" scripts/gpu_kernels.py "$OUT_DIR/kernels_gpu.json"
  fi
else
  record kernels skip 0 0 "scripts/gpu_kernels.py not present"
fi

# ----------------------------------------------------------------------------- 5. every gpu-marked test
# shellcheck disable=SC2086
if run pytest-gpu "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} ${GPU_TEST_PATHS:-tests}; then
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
