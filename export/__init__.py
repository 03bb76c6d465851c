"""skugen.export: the TOOLCHAIN (torch, torch-pruning, nncf, onnx, onnxslim).

Install with `pip install 'skugen[export]'`. Submodules import torch lazily
where they can, so `skugen.export.data` stays cheap.
"""
