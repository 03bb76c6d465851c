"""skugen.tune + skugen.selection: auto picks by measurement on this machine, says why, never breaks the bundle."""
from __future__ import annotations

import copy
import json
import shutil

import pytest

import skugen
from skugen import tune
from skugen.bundle import MANIFEST, load_bundle
from skugen.cli import main


@pytest.fixture(scope="module")
def table(cgan_bundle):
    return tune.measure(load_bundle(cgan_bundle), threads=1, budget_s=0.2, min_iters=3)


@pytest.fixture
def bundle_copy(cgan_bundle, tmp_path):
    return shutil.copytree(cgan_bundle, tmp_path / "b")


def test_measure_times_every_installed_engine_at_the_deployment_shape(table, cgan_bundle):
    b = load_bundle(cgan_bundle)
    assert table["request"] == f"batch {min(16, b.spec.max_batch)}"
    ok = {(c["engine"], c["precision"]) for c in table["cells"] if c["status"] == "ok"}
    assert ("onnxruntime", "fp32") in ok and ("onnxruntime", "int8") in ok
    if skugen.backends.backend_status("openvino").usable:
        assert ("openvino", "fp32") in ok and ("openvino", "int8") in ok
    for c in table["cells"]:
        assert (c["status"] == "ok") == (c.get("p50_ms", 0) > 0), c
        if c["status"] != "ok":
            assert c["reason"]
    bf16 = next(c for c in table["cells"] if c["precision"] == "bf16")
    gate_ok, _ = tune.bf16_gate(b)
    if gate_ok and skugen.backends.backend_status("openvino").usable:
        # gated on a native-BF16 CPU (AMX / AVX512-BF16): it must be timed here, not refused
        from skugen.backends.openvino import native_bf16

        assert bf16["status"] == ("ok" if native_bf16()[0] else "skipped"), bf16
    else:
        assert bf16["status"] == "skipped" and ("BF16" in bf16["reason"] or "openvino" in bf16["reason"])
    fp = table["fingerprint"]
    assert fp == tune.fingerprint() and fp["cores"] >= 1 and fp["engines"]["onnxruntime"]


def test_fingerprint_mismatch_names_what_differs():
    here = tune.fingerprint()
    assert tune.fingerprint_mismatch(here) is None
    other = {**here, "isa_flags": here["isa_flags"] + ["amx_bf16"], "cores": here["cores"] + 8}
    why = tune.fingerprint_mismatch(other)
    assert "isa_flags" in why and "cores" in why
    assert tune.fingerprint_mismatch(None) == "the record has no machine fingerprint"


def _favour(table: dict, engine: str, precision: str) -> dict:
    """The real measured table with one runnable cell made the fastest (to see that load follows the table)."""
    t = copy.deepcopy(table)
    for c in t["cells"]:
        if c["status"] == "ok":
            c["p50_ms"] = 0.001 if (c["engine"], c["precision"]) == (engine, precision) else c["p50_ms"] + 100
    return t


def test_load_follows_a_sidecar_measured_here_and_the_bundle_still_verifies(table, bundle_copy):
    b = load_bundle(bundle_copy)
    slow = next(c for c in table["cells"] if c["status"] == "ok" and c["precision"] == "fp32")
    path = tune.save_sidecar(b, _favour(table, slow["engine"], "fp32"))
    assert path == b.root / "engines" / "tune.json"
    with skugen.load(bundle_copy) as pipe:  # verify=True: the sidecar is outside the files map
        sel = pipe.info["selection"]
        assert (pipe.backend, pipe.precision) == (slow["engine"], "fp32")
        assert sel["source"].startswith("tune sidecar") and "fastest measured cell" in sel["reason"]
        assert sel["tensorrt"].startswith("skipped")  # no GPU here: said, not failed
    with skugen.load(bundle_copy, backend="onnxruntime") as pipe:  # an explicit engine narrows the same table
        assert pipe.backend == "onnxruntime"


def test_a_table_from_another_machine_is_ignored_with_a_note(table, bundle_copy):
    b = load_bundle(bundle_copy)
    t = _favour(table, "onnxruntime", "fp32")
    t["fingerprint"] = {**t["fingerprint"], "cpu_model": "Some Other CPU"}
    tune.save_sidecar(b, t)
    c = skugen.selection.choose("auto", "auto", b)
    # The export hook recorded a table measured here in the manifest: that one is used instead.
    assert c.source == ("manifest tune table (export time)" if "tune" in b.spec.extra else "static preference")
    assert any("another machine" in n and "cpu_model" in n for n in c.notes)


def test_export_hook_records_the_table_in_the_manifest(bundle_copy):
    from skugen.bundle import write_bundle

    src = load_bundle(bundle_copy)
    files = {rel: src.root / rel for rel in src.spec.files}
    t = tune.table_for_export(src.spec, files, threads=1, budget_s=0.1, min_iters=2)
    assert t is not None and t["cells"] and "manifest_sha256" not in t
    m = {k: v for k, v in src.spec.to_dict().items() if k != "files"}
    out = write_bundle(bundle_copy.parent / "with-table", {**m, "tune": t}, files)
    b = load_bundle(out)  # written once, with the table inside: verifies
    assert json.loads((b.root / MANIFEST).read_text())["tune"]["fingerprint"] == tune.fingerprint()
    rec, why = tune.manifest_record(b)
    assert why is None and rec["cells"] == t["cells"]
    c = skugen.selection.choose("auto", "auto", b)
    assert c.source == "manifest tune table (export time)"
    best = tune.fastest(rec, allowed={(e, p) for e, p, w in tune.candidates(b) if w is None})
    assert (c.backend, c.precision) == (best["engine"], best["precision"])


def test_bf16_gate_reads_the_exporters_record(cgan_bundle):
    """models.fp32.runtime_precisions.openvino.bf16, as skugen.export.openvino_quant writes it."""
    from dataclasses import replace
    from types import SimpleNamespace

    b = load_bundle(cgan_bundle)
    fp = b.spec.models["fp32"]

    def with_record(rec):
        extra = {k: v for k, v in fp.extra.items() if k != "runtime_precisions"}
        if rec is not None:
            extra["runtime_precisions"] = {"openvino": {"bf16": rec}}
        return SimpleNamespace(spec=replace(b.spec, models={**b.spec.models, "fp32": replace(fp, extra=extra)}))

    ok, why = tune.bf16_gate(with_record(None))
    assert not ok and "no BF16 quality gate" in why
    ok, why = tune.bf16_gate(with_record({"accepted": False, "native": False, "measured": False}))
    assert not ok and "no native BF16" in why
    assert tune.bf16_gate(with_record({"accepted": True, "native": True}))[0] is True
    assert tune.bf16_gate(with_record({"accepted": False, "native": True}))[0] is False
    rec = (fp.extra.get("runtime_precisions") or {}).get("openvino", {}).get("bf16")
    if rec is not None:  # the fixture was exported with openvino installed: its own record reads the same way
        assert tune.bf16_gate(b)[0] == bool(rec["native"] and rec["accepted"])


def test_skugen_tune_cli(bundle_copy, capsys):
    assert main(["tune", str(bundle_copy), "--threads", "1", "--budget", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saved_to"] == str(bundle_copy / "engines" / "tune.json")
    assert json.loads((bundle_copy / "engines" / "tune.json").read_text())["cells"] == out["cells"]
    with pytest.raises(SystemExit) as e:  # argparse refuses it before anything is measured
        main(["tune", str(bundle_copy), "--budget", "0"])
    assert e.value.code == 2 and "--budget: must be a finite number > 0, got 0" in capsys.readouterr().err
