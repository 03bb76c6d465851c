"""nvcc compiles every kernel for Jetson Orin (sm_87), Hopper (sm_90) and the oldest arch this nvcc
supports; the ptxas report is saved and parsed; the arithmetic contract (no FMA) holds in the PTX."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from skugen import cli
from skugen.kernels import compile_check as cc
from skugen.kernels._launch import KERNEL_DIR, SOURCES, kernel_signatures, source_hash

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit)")

SAMPLE = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'skugen_rgb_to_y' for 'sm_90'
ptxas info    : Function properties for skugen_rgb_to_y
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 18 registers, used 0 barriers, 1024 bytes smem, 420 bytes cmem[0]
"""


def test_parse_ptxas_report():
    (rec,) = cc.parse_ptxas(SAMPLE)
    assert rec == {"kernel": "skugen_rgb_to_y", "arch": "sm_90", "registers": 18, "stack_bytes": 0,
                   "spill_store_bytes": 0, "spill_load_bytes": 0, "smem_bytes": 1024, "cmem0_bytes": 420}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("ptxas") / "report.json"
    assert cli.main(["kernels", "compile-check", "--out", str(out)]) == 0
    return json.loads(out.read_text())


@needs_nvcc
def test_every_kernel_compiles_for_orin_hopper_and_the_oldest_arch(report):
    oldest = cc.supported_archs()[0]
    assert {"sm_87", "sm_90", oldest} <= set(report["archs"])
    assert report["ok"], report["sources"]
    got = {(k["kernel"], k["arch"]) for k in report["kernels"]}
    assert got == {(name, a) for name in kernel_signatures() for a in report["archs"]}
    for k in report["kernels"]:
        assert 0 < k["registers"] <= 64, k  # leaves room for full occupancy at 256 threads a block
        assert k["spill_store_bytes"] == k["spill_load_bytes"] == 0, k
        assert k["stack_bytes"] == 0 and k["smem_bytes"] == 0, k


@needs_nvcc
def test_committed_report_is_current(report):
    committed = json.loads(cc.DEFAULT_REPORT.read_text())
    assert committed["source_sha256"] == source_hash(), (
        "kernels changed: regenerate with `skugen kernels compile-check`")
    assert committed["ok"] and committed["archs"] == report["archs"]
    assert {(k["kernel"], k["arch"]) for k in committed["kernels"]} == {(k["kernel"], k["arch"]) for k in report["kernels"]}


@needs_nvcc
def test_ptx_keeps_the_no_fma_contract_even_without_fmad_false(tmp_path):
    """Every float32 add/sub/mul/div is an explicitly rounded .rn op, so ptxas may not fuse it into an
    FMA whatever flags a user compiles with; that is what makes GPU == numpy bit for bit."""
    for src in SOURCES:
        out = tmp_path / (src + ".ptx")
        subprocess.run(["nvcc", "--ptx", "-arch=sm_90", "-O3", f"-I{KERNEL_DIR}", "-o", str(out),
                        str(KERNEL_DIR / src)], check=True, capture_output=True)
        ops = re.findall(r"^\s*((?:fma|mad|add|sub|mul|div)\.[\w.]*f(?:32|16))", out.read_text(), re.M)
        assert ops, src
        bad = [op for op in ops if op.startswith(("fma", "mad")) or ".rn." not in op + "."]
        assert not bad, f"{src}: contractible float ops {sorted(set(bad))}"
