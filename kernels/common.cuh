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

// ---- quad (x4) variants: 4 CONSECUTIVE pixels per thread, one vector access per plane --------
// The callers check alignment (is_aligned) and fall back to the scalar accessors above; the
// values are identical either way (same conversions, only the memory transactions differ).
__device__ __forceinline__ bool is_aligned(const void* p, unsigned bytes) {
    return ((unsigned long long)p & (unsigned long long)(bytes - 1)) == 0;
}
#ifdef __CUDACC__
__device__ __forceinline__ void load4_f32(const float* p, float* o) {
    const float4 q = *reinterpret_cast<const float4*>(p);  // 16-byte aligned (caller checks)
    o[0] = q.x; o[1] = q.y; o[2] = q.z; o[3] = q.w;
}
__device__ __forceinline__ void load4_f32(const __half* p, float* o) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);    // 8-byte aligned (caller checks)
    o[0] = __half2float(__ushort_as_half((unsigned short)(q.x & 0xffffu)));
    o[1] = __half2float(__ushort_as_half((unsigned short)(q.x >> 16)));
    o[2] = __half2float(__ushort_as_half((unsigned short)(q.y & 0xffffu)));
    o[3] = __half2float(__ushort_as_half((unsigned short)(q.y >> 16)));
}
__device__ __forceinline__ void store4_f32(float* p, const float* v) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4_f32(__half* p, const float* v) {
    const unsigned a = __half_as_ushort(__float2half_rn(v[0])), b = __half_as_ushort(__float2half_rn(v[1]));
    const unsigned c = __half_as_ushort(__float2half_rn(v[2])), d = __half_as_ushort(__float2half_rn(v[3]));
    *reinterpret_cast<uint2*>(p) = make_uint2(a | (b << 16), c | (d << 16));
}
__device__ __forceinline__ void store4_u8(unsigned char* p, unsigned char a, unsigned char b, unsigned char c,
                                          unsigned char d) {
    *reinterpret_cast<unsigned int*>(p) = (unsigned)a | ((unsigned)b << 8) | ((unsigned)c << 16) | ((unsigned)d << 24);
}
#else  // host emulation: the same element values through memcpy (alignment is irrelevant on the CPU)
inline void load4_f32(const float* p, float* o) { memcpy(o, p, 16); }
inline void load4_f32(const __half* p, float* o) {
    __half h[4];
    memcpy(h, p, 8);
    for (int i = 0; i < 4; ++i) o[i] = __half2float(h[i]);
}
inline void store4_f32(float* p, const float* v) { memcpy(p, v, 16); }
inline void store4_f32(__half* p, const float* v) {
    __half h[4];
    for (int i = 0; i < 4; ++i) h[i] = __float2half_rn(v[i]);
    memcpy(p, h, 8);
}
inline void store4_u8(unsigned char* p, unsigned char a, unsigned char b, unsigned char c, unsigned char d) {
    const unsigned char q[4] = {a, b, c, d};
    memcpy(p, q, 4);
}
#endif

#endif  // SKUGEN_COMMON_CUH
