"""CudaProcessor's CUDA-context discipline and get_processor's fallback, against a fake pycuda (no GPU here).

The fake pycuda tracks, PER THREAD, the stack of current contexts (as the CUDA driver does), and every memory
operation / kernel launch asserts that the device's primary context is current on the calling thread.

What it can catch: a processor that makes its context current only on the creating thread (the old bug: any
other thread failed in mem_alloc), unbalanced push/pop (a context left current), a non-primary context, and a
get_processor("auto") that lets a CUDA load error escape. What it cannot: anything the kernels compute (the fake
launches do nothing; numerics are test_host_emulation.py / test_gpu_kernels.py), real driver behaviour.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import types

import numpy as np
import pytest

from skugen.kernels import launcher
from skugen.kernels.reference import NumpyProcessor


class _FakePycuda:
    def __init__(self):
        self.tls = threading.local()
        self.primary = None
        self.ops = 0
        self.lock = threading.Lock()
        fake = self

        class Error(Exception):
            pass

        class Ctx:
            def __init__(self, device):
                self.device = device

            def push(self):
                fake.stack().append(self)

            def detach(self):
                pass

            def get_device(self):
                return self.device

        class Context:
            @staticmethod
            def pop():
                assert fake.stack(), "Context.pop() with no current context on this thread"
                fake.stack().pop()

            @staticmethod
            def get_current():
                s = fake.stack()
                return s[-1] if s else None

            @staticmethod
            def synchronize():
                fake.check()

        class Device:
            def __init__(self, i):
                self.i = i

            @staticmethod
            def count():
                return 1

            def retain_primary_context(self):
                if fake.primary is None:
                    fake.primary = Ctx(self)
                return fake.primary

            def compute_capability(self):
                return (9, 0)

            def name(self):
                return "Fake H200"

        class Fn:
            def prepare(self, sig):
                self.sig = sig

            def prepared_async_call(self, grid, block, stream, *args):
                fake.check()

        class Module:
            def get_function(self, name):
                return Fn()

        class Stream:
            pass

        self.Error, self.Context, self.Device, self.Stream = Error, Context, Device, Stream
        self.driver = types.ModuleType("pycuda.driver")
        for k in ("Error", "Context", "Device", "Stream"):
            setattr(self.driver, k, getattr(self, k))
        self.driver.init = lambda: None
        self.driver.module_from_buffer = lambda image: (fake.check(), Module())[1]
        self.driver.mem_alloc = self.mem_alloc
        self.driver.memcpy_htod = lambda dst, src: fake.check()
        self.driver.memcpy_dtoh = lambda dst, src: fake.check()
        self.compiler = types.ModuleType("pycuda.compiler")
        self.compiler.compile = lambda *a, **k: b"fake-cubin"

    def stack(self) -> list:
        if not hasattr(self.tls, "stack"):
            self.tls.stack = []
        return self.tls.stack

    def check(self):
        s = self.stack()
        assert s and s[-1] is self.primary, f"no primary context current on {threading.current_thread().name}"
        with self.lock:
            self.ops += 1

    def mem_alloc(self, n):
        self.check()
        return type("Buf", (), {"__int__": lambda s: 4096, "free": lambda s: None})()


@pytest.fixture
def fake_pycuda(monkeypatch, tmp_path):
    f = _FakePycuda()
    pkg = types.ModuleType("pycuda")
    pkg.driver, pkg.compiler = f.driver, f.compiler
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", f.driver)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", f.compiler)
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    return f


def test_processor_pushes_the_primary_context_on_every_thread(fake_pycuda):
    proc = launcher.CudaProcessor()
    assert fake_pycuda.stack() == []  # nothing left current on the creating thread either
    img = np.zeros((6, 5, 3), np.uint8)
    errors, ops0 = [], fake_pycuda.ops

    def work():
        try:
            for _ in range(3):
                proc.preprocess([img], (4, 4))
                proc.postprocess(np.zeros((1, 3, 4, 4), np.float32))
                proc.rgb_to_y(img)
                proc.postprocess_device(4096, 4096, batch=1, hw=(4, 4))
            assert fake_pycuda.stack() == [], "context left current after a call"
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, name=f"worker-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert fake_pycuda.ops - ops0 >= 8 * 3 * 4  # every thread really allocated, copied and launched


def test_the_fake_catches_a_processor_without_the_context(fake_pycuda):
    """Without the per-call push (what the processor did before), a worker thread fails: the test can fail."""
    proc = launcher.CudaProcessor()
    with pytest.raises(AssertionError, match="no primary context"):
        launcher.KernelProcessor.postprocess(proc, np.zeros((1, 3, 4, 4), np.float32))


@pytest.mark.parametrize("exc", [RuntimeError("cuModuleLoadData failed: device kernel image is invalid"),
                                 OSError("libcuda.so.1: cannot open shared object file")])
def test_auto_falls_back_to_numpy_on_any_cuda_load_error(monkeypatch, caplog, exc):
    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(launcher, "CudaProcessor", boom)
    with caplog.at_level(logging.WARNING, logger="skugen.kernels"):
        proc = launcher.get_processor("auto")
    assert isinstance(proc, NumpyProcessor) and str(exc) in proc.fallback_reason
    assert str(exc) in caplog.text and "numpy" in caplog.text
    with pytest.raises(type(exc)):
        launcher.get_processor("cuda")  # asked for CUDA explicitly: the error is not hidden


def test_prepost_gpu_processor_falls_back_when_the_launcher_fails(monkeypatch, caplog):
    from skugen import prepost

    monkeypatch.setattr(launcher, "CudaProcessor", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad arch")))
    with caplog.at_level(logging.WARNING):
        proc = prepost.get_processor("gpu")
    assert isinstance(proc, NumpyProcessor) and "bad arch" in proc.fallback_reason and "bad arch" in caplog.text


def test_kernel_choice_json_sets_the_default_variants(tmp_path):
    p = tmp_path / "kernel_choice.json"
    assert launcher.default_variants(p) == launcher.KernelProcessor.DEFAULT_VARIANTS  # absent: the built-in default
    p.write_text(json.dumps({"default_variants": {"preprocess": "x4", "postprocess": "bogus", "other": "x4"}}))
    assert launcher.default_variants(p) == {"preprocess": "x4", "postprocess": "strided"}  # invalid values ignored
    p.write_text("{not json")
    assert launcher.default_variants(p) == launcher.KernelProcessor.DEFAULT_VARIANTS


def test_processor_reads_the_committed_choice(fake_pycuda, monkeypatch, tmp_path):
    p = tmp_path / "choice.json"
    p.write_text(json.dumps({"default_variants": {"postprocess": "x4"}}))
    monkeypatch.setattr(launcher, "KERNEL_CHOICE", p)
    assert launcher.CudaProcessor().variants["postprocess"] == "x4"
