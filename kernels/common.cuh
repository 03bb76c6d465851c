// Shared by every skugen kernel. Compiled by nvcc for the GPU, and by g++ through
// host_emu.h for the CPU host-emulation tests (same source, same arithmetic).
//
// Arithmetic contract (mirrored by reference.py): every float operation is an
// explicitly rounded IEEE float32 intrinsic (__fmul_rn, __fadd_rn, ...), which nvcc
// never fuses into FMA, so the GPU, the emulation and numpy agree bit for bit.
#ifndef SKUGEN_COMMON_CUH
#define SKUGEN_COMMON_CUH

#ifdef __CUDACC__
#include <cuda_fp16.h>
#else
#include "host_emu.h"
#endif

// Each thread handles this many output pixels of one row, blockDim.x apart: loads stay
// coalesced and every thread keeps several independent loads in flight, which the
// one-pixel-per-thread version lacked to reach DRAM bandwidth. The launcher reads this value.
#define SKUGEN_PIXELS_PER_THREAD 4

// Load one element as float / store a float as the element type (half: round to nearest even).
__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(__half* p, float v) { *p = __float2half_rn(v); }

#endif  // SKUGEN_COMMON_CUH
