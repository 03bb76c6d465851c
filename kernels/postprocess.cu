// Postprocess: NCHW float32 / float16 model output (RGB planes)
//   -> value range to [0, 255] -> NaN to 0 -> clamp -> round half to even -> uint8 HWC
//   (RGB, BGR or GRAY, any output row pitch).
// One thread per SKUGEN_PIXELS_PER_THREAD pixels of a row.
// Grid: (ceil(w / (blockDim.x * SKUGEN_PIXELS_PER_THREAD)), ceil(h / blockDim.y), batch).
#include "common.cuh"

__device__ __forceinline__ unsigned char to_u8(float x, float scale, float offset) {
    if (x != x) return 0;  // NaN -> 0 (black), documented; explicit rather than left to fmaxf
    float v = __fadd_rn(__fmul_rn(x, scale), offset);
    v = fminf(fmaxf(v, 0.0f), 255.0f);
    return (unsigned char)__float2int_rn(v);  // round half to even, like numpy.rint
}

template <typename InT>
__device__ __forceinline__ void postprocess_pixel(
    const InT* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (y >= h || n >= batch) return;

    const long long plane = (long long)h * w;
    const InT* in_row = src + n * channels * plane + (long long)y * w;  // (B, C, H, W)
    unsigned char* out_row = dst + n * dst_image_stride + y * dst_pitch;  // (B, H, W, C)
    const int ch[3] = {ch0, ch1, ch2};
    // Two phases so a thread's loads are all in flight together: load every plane of every pixel,
    // then convert and store.
    float v[SKUGEN_PIXELS_PER_THREAD][3];
#pragma unroll
    for (int p = 0; p < SKUGEN_PIXELS_PER_THREAD; ++p) {
        const int x = (blockIdx.x * SKUGEN_PIXELS_PER_THREAD + p) * blockDim.x + threadIdx.x;
        if (x >= w) break;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (k < channels) v[p][k] = load_f32(in_row + ch[k] * plane + x);
        }
    }
#pragma unroll
    for (int p = 0; p < SKUGEN_PIXELS_PER_THREAD; ++p) {
        const int x = (blockIdx.x * SKUGEN_PIXELS_PER_THREAD + p) * blockDim.x + threadIdx.x;
        if (x >= w) break;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (k < channels) out_row[x * channels + k] = to_u8(v[p][k], scale, offset);
        }
    }
}

extern "C" __global__ void skugen_postprocess_f32(
    const float* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    postprocess_pixel<float>(src, batch, channels, h, w, ch0, ch1, ch2, scale, offset,
                             dst, dst_image_stride, dst_pitch);
}

extern "C" __global__ void skugen_postprocess_f16(
    const __half* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    postprocess_pixel<__half>(src, batch, channels, h, w, ch0, ch1, ch2, scale, offset,
                              dst, dst_image_stride, dst_pitch);
}

// ---- x4 variant: 4 CONSECUTIVE pixels per thread (x0 = 4 * global x) -------------------------
// Same grid as above (SKUGEN_PIXELS_PER_THREAD == 4). Per plane one 16-byte (float) / 8-byte
// (half) load, and the 4 pixels' 4*C output bytes as C aligned 32-bit stores instead of 4*C
// byte stores: the per-byte HWC stores are what held the f16 kernel at 38% of the DRAM floor.
// Misaligned rows (odd widths, pitches not a multiple of 4) and the row's tail take the scalar path.
template <typename InT>
__device__ __forceinline__ void postprocess_quad(
    const InT* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    const int x0 = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (y >= h || n >= batch || x0 >= w) return;
    const int npx = min(4, w - x0);

    const long long plane = (long long)h * w;
    const InT* in_row = src + n * channels * plane + (long long)y * w + x0;  // (B, C, H, W)
    unsigned char* out = dst + n * dst_image_stride + y * dst_pitch + (long long)x0 * channels;  // (B, H, W, C)
    const int ch[3] = {ch0, ch1, ch2};
    // Every array index below is a compile-time constant once the loops unroll (guards instead of
    // runtime loop bounds), so v and q live in registers: no local-memory stack frame.
    float v[3][4];
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        if (k < channels) {
            const InT* p = in_row + ch[k] * plane;
            if (npx == 4 && is_aligned(p, 4 * sizeof(InT))) {
                load4_f32(p, v[k]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (j < npx) v[k][j] = load_f32(p + j);
                }
            }
        }
    }
    unsigned char q[4][3];  // q[pixel][channel]
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (j < npx && k < channels) q[j][k] = to_u8(v[k][j], scale, offset);
        }
    }
    if (npx == 4 && is_aligned(out, 4) && channels == 3) {  // 12 bytes = 3 words, HWC order
        store4_u8(out, q[0][0], q[0][1], q[0][2], q[1][0]);
        store4_u8(out + 4, q[1][1], q[1][2], q[2][0], q[2][1]);
        store4_u8(out + 8, q[2][2], q[3][0], q[3][1], q[3][2]);
    } else if (npx == 4 && is_aligned(out, 4) && channels == 1) {
        store4_u8(out, q[0][0], q[1][0], q[2][0], q[3][0]);
    } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                if (j < npx && k < channels) out[j * channels + k] = q[j][k];
            }
        }
    }
}

extern "C" __global__ void skugen_postprocess_f32_x4(
    const float* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    postprocess_quad<float>(src, batch, channels, h, w, ch0, ch1, ch2, scale, offset,
                            dst, dst_image_stride, dst_pitch);
}

extern "C" __global__ void skugen_postprocess_f16_x4(
    const __half* __restrict__ src, int batch, int channels, int h, int w,
    int ch0, int ch1, int ch2, float scale, float offset,
    unsigned char* __restrict__ dst, long long dst_image_stride, long long dst_pitch)
{
    postprocess_quad<__half>(src, batch, channels, h, w, ch0, ch1, ch2, scale, offset,
                             dst, dst_image_stride, dst_pitch);
}
