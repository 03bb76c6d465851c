"""skugen.kernels: CUDA pre/post-processing kernels, their pycuda launcher and numpy references."""
