"""skugen.kernels: CUDA pre/post-processing kernels, their pycuda launcher and numpy references.

The runtime calls `get_processor()` and uses the returned object's
`preprocess`, `postprocess` and `rgb_to_y` (numpy in, numpy out); on a GPU the
CudaProcessor also takes device pointers (`*_device` methods) so outputs can go
straight into a TensorRT binding. The numpy functions below are both the
reference the kernels are tested against and the CPU path.
"""
from ._spec import LAYOUTS
from .launcher import CudaProcessor, get_processor
from .reference import NumpyProcessor, bilinear_taps, postprocess, preprocess, rgb_to_y

__all__ = [
    "LAYOUTS",
    "CudaProcessor",
    "NumpyProcessor",
    "bilinear_taps",
    "get_processor",
    "postprocess",
    "preprocess",
    "rgb_to_y",
]
