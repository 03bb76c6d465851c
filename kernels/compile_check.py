"""nvcc compile check of every kernel, with the ptxas resource report (no GPU needed).

    skugen kernels compile-check [--out benchmarks/kernels/ptxas_report.json] [--arch sm_87 ...]

Compiles each source for sm_87 (Jetson Orin), sm_90 (H100/H200) and the oldest
architecture the local nvcc supports, with the launcher's flags plus -Xptxas -v,
and records registers, spills, stack, shared and constant memory per kernel.
"""
from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from skugen.errors import BackendUnavailable

from ._launch import KERNEL_DIR, NVCC_OPTIONS, SOURCES, source_hash

REQUIRED_ARCHS = ("sm_87", "sm_90")  # Jetson Orin; H100/H200
DEFAULT_REPORT = KERNEL_DIR.parent / "benchmarks" / "kernels" / "ptxas_report.json"


def find_nvcc(nvcc: str = "nvcc") -> str:
    path = shutil.which(nvcc)
    if path is None:
        raise BackendUnavailable(f"{nvcc!r} not found: install the CUDA toolkit (nvcc) or put it on PATH")
    return path


def nvcc_version(nvcc: str = "nvcc") -> str:
    out = subprocess.run([find_nvcc(nvcc), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\S+), V(\S+)", out)
    return m.group(2) if m else out.strip().splitlines()[-1]


def supported_archs(nvcc: str = "nvcc") -> list[str]:
    """sm_XY for every compute_XY that `nvcc --list-gpu-arch` prints, oldest first."""
    out = subprocess.run([find_nvcc(nvcc), "--list-gpu-arch"], capture_output=True, text=True).stdout
    nums = sorted({int(m) for m in re.findall(r"compute_(\d+)", out)})
    return [f"sm_{n}" for n in nums]


def default_archs(nvcc: str = "nvcc") -> list[str]:
    supported = supported_archs(nvcc)
    return sorted({supported[0], *REQUIRED_ARCHS}, key=lambda a: int(a[3:]))


# "ptxas info    : Compiling entry function 'k' for 'sm_90'" then
# "ptxas info    : Used 30 registers, used 0 barriers, 412 bytes cmem[0]" (+ optional smem) and
# "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads".
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\w+)'")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_CMEM = re.compile(r"(\d+) bytes cmem\[0\]")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas(text: str) -> list[dict]:
    """ptxas -v output -> one record per (kernel, arch)."""
    records, cur = [], None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            cur = {"kernel": m.group(1), "arch": m.group(2), "registers": None, "stack_bytes": None,
                   "spill_store_bytes": None, "spill_load_bytes": None, "smem_bytes": 0, "cmem0_bytes": None}
            records.append(cur)
        elif cur is not None:
            if m := _FRAME.search(line):
                cur["stack_bytes"], cur["spill_store_bytes"], cur["spill_load_bytes"] = map(int, m.groups())
            if m := _USED.search(line):
                cur["registers"] = int(m.group(1))
                if s := _SMEM.search(line):
                    cur["smem_bytes"] = int(s.group(1))
                if c := _CMEM.search(line):
                    cur["cmem0_bytes"] = int(c.group(1))
    return records


def compile_source(source: str, archs: list[str], nvcc: str = "nvcc") -> tuple[int, str, list[dict]]:
    """nvcc one source for all archs in one call (device code only); returns (rc, log, records)."""
    gencode = [f"-gencode=arch=compute_{a[3:]},code={a}" for a in archs]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [find_nvcc(nvcc), "--fatbin", *NVCC_OPTIONS, "-Xptxas", "-v", f"-I{KERNEL_DIR}", *gencode,
               "-o", str(Path(tmp) / "out.fatbin"), str(KERNEL_DIR / source)]
        r = subprocess.run(cmd, capture_output=True, text=True)
    log = r.stdout + r.stderr
    return r.returncode, " ".join(cmd) + "\n" + log, parse_ptxas(log)


def compile_check(archs: list[str] | None = None, nvcc: str = "nvcc") -> dict:
    archs = archs or default_archs(nvcc)
    report = {
        "schema_version": 1,
        "what": "nvcc compile check of skugen kernels with -Xptxas -v (per kernel and architecture)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nvcc": nvcc_version(nvcc),
        "options": list(NVCC_OPTIONS),
        "archs": archs,
        "source_sha256": source_hash(),
        "sources": {},
        "kernels": [],
    }
    for s in SOURCES:
        rc, log, records = compile_source(s, archs, nvcc)
        report["sources"][s] = {"ok": rc == 0, "returncode": rc, "log": log if rc else ""}
        report["kernels"] += [dict(r, source=s) for r in records]
    report["ok"] = all(v["ok"] for v in report["sources"].values())
    return report
