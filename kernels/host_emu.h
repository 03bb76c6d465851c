// Host emulation of the CUDA subset the skugen kernels use, so the SAME .cu sources
// compile with g++ and run on the CPU against the numpy reference (see host_emu.py).
//
// Limits, by design: blocks and threads run one after another, so kernels must not use
// __syncthreads, shared memory, warp intrinsics or atomics (the skugen kernels don't).
// Build with -ffp-contract=off so a * b + c stays two rounded operations, as on the GPU.
#ifndef SKUGEN_HOST_EMU_H
#define SKUGEN_HOST_EMU_H
#ifdef __CUDACC__
#error "host_emu.h is for g++ builds only"
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
// The running emulated thread's coordinates (C++17 inline variables: one copy per program).
inline dim3 gridDim, blockDim, blockIdx, threadIdx;

// ---- float intrinsics: IEEE float32, round to nearest even (the default mode) -------------
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// ---- __half: storage type plus the two conversions the kernels use ------------------------
struct __half {
    uint16_t bits;
};

// float32 -> binary16, round to nearest even, with subnormals, overflow to inf and NaN kept
// (F. Giesen's float_to_half_fast3_rtne, public domain).
inline __half __float2half_rn(float value) {
    const uint32_t f32_inf = 255u << 23;
    const uint32_t f16_max = (127u + 16u) << 23;  // 65536.0f: this and above round to inf
    const uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    float denorm_magic;
    memcpy(&denorm_magic, &denorm_magic_bits, 4);
    uint32_t f;
    memcpy(&f, &value, 4);
    const uint32_t sign = f & 0x80000000u;
    f ^= sign;
    uint16_t o;
    if (f >= f16_max) {
        o = (f > f32_inf) ? 0x7e00 : 0x7c00;  // NaN -> quiet NaN, else inf
    } else if (f < (113u << 23)) {
        // Result is subnormal: let a float addition do the rounding.
        float fv;
        memcpy(&fv, &f, 4);
        fv += denorm_magic;
        uint32_t r;
        memcpy(&r, &fv, 4);
        o = (uint16_t)(r - denorm_magic_bits);
    } else {
        const uint32_t mant_odd = (f >> 13) & 1u;
        f += ((uint32_t)(15 - 127) << 23) + 0xfffu;  // rebias exponent, round half up ...
        f += mant_odd;                                // ... then to even
        o = (uint16_t)(f >> 13);
    }
    __half h;
    h.bits = (uint16_t)(o | (sign >> 16));
    return h;
}

inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16;
    const uint32_t exp = (h.bits >> 10) & 0x1fu;
    const uint32_t mant = h.bits & 0x3ffu;
    float out;
    if (exp == 0) {
        out = ldexpf((float)mant, -24);  // zero or subnormal: exact
        uint32_t b;
        memcpy(&b, &out, 4);
        b |= sign;
        memcpy(&out, &b, 4);
        return out;
    }
    const uint32_t b = sign | (exp == 31 ? (0xffu << 23) | (mant << 13) : ((exp + 112u) << 23) | (mant << 13));
    memcpy(&out, &b, 4);
    return out;
}

// ---- launching ---------------------------------------------------------------------------
// EmuLaunch<kernel>::run(grid xyz, block xyz, kernel args...) runs every thread of the grid.
template <auto Kernel>
struct EmuLaunch;

template <typename... P, void (*Kernel)(P...)>
struct EmuLaunch<Kernel> {
    static void run(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, P... args) {
        gridDim = dim3{gx, gy, gz};
        blockDim = dim3{bx, by, bz};
        for (unsigned z = 0; z < gz; ++z)
            for (unsigned y = 0; y < gy; ++y)
                for (unsigned x = 0; x < gx; ++x) {
                    blockIdx = dim3{x, y, z};
                    for (unsigned tz = 0; tz < bz; ++tz)
                        for (unsigned ty = 0; ty < by; ++ty)
                            for (unsigned tx = 0; tx < bx; ++tx) {
                                threadIdx = dim3{tx, ty, tz};
                                Kernel(args...);
                            }
                }
    }
};

// Exports `emu_<kernel>`: a C function pointer to EmuLaunch<kernel>::run, found with ctypes.
#define SKUGEN_EMU_EXPORT(kernel) \
    extern "C" decltype(&EmuLaunch<kernel>::run) const emu_##kernel = &EmuLaunch<kernel>::run;

// Exact-size buffers from the C heap, so AddressSanitizer guards every byte past them, and
// the half conversions on their own for tests.
#define SKUGEN_EMU_HELPERS                                                                      \
    extern "C" void* emu_malloc(size_t n) { return malloc(n ? n : 1); }                        \
    extern "C" void emu_free(void* p) { free(p); }                                             \
    extern "C" void emu_float2half(const float* in, uint16_t* out, long long n) {              \
        for (long long i = 0; i < n; ++i) out[i] = __float2half_rn(in[i]).bits;                \
    }                                                                                          \
    extern "C" void emu_half2float(const uint16_t* in, float* out, long long n) {              \
        for (long long i = 0; i < n; ++i) out[i] = __half2float(__half{in[i]});                \
    }

#endif  // SKUGEN_HOST_EMU_H
