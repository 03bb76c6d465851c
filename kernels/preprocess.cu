// Preprocess: uint8 HWC image batch (RGB/BGR/RGBA/BGRA/GRAY, any row pitch)
//   -> bilinear resize (torch interpolate, align_corners=False, antialias=False)
//   -> per-channel normalise -> NCHW float32 / float16.
// One thread per SKUGEN_PIXELS_PER_THREAD output pixels of a row, all channels (they share the
// resize taps). Grid: (ceil(out_w / (blockDim.x * SKUGEN_PIXELS_PER_THREAD)), ceil(out_h / blockDim.y), batch).
#include "common.cuh"

// The two source taps and weights of output index `o` along one axis (torch's half-pixel rule):
//   src = max(scale * (o + 0.5) - 0.5, 0); i0 = min(floor(src), n - 1); i1 = i0 + (i0 < n - 1)
//   w1 = clamp(src - i0, 0, 1); w0 = 1 - w1
struct Taps {
    int i0, i1;
    float w0, w1;
};

__device__ __forceinline__ Taps bilinear_taps(int o, int n_in, float scale) {
    float src = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), 0.5f);
    src = fmaxf(src, 0.0f);
    Taps t;
    t.i0 = min((int)floorf(src), n_in - 1);
    t.i1 = t.i0 + (t.i0 < n_in - 1 ? 1 : 0);
    t.w1 = fminf(fmaxf(__fsub_rn(src, (float)t.i0), 0.0f), 1.0f);
    t.w0 = __fsub_rn(1.0f, t.w1);
    return t;
}

// One output pixel's resized (and, for gray, mixed) values in [0, 255]: v[0..n_out).
__device__ __forceinline__ void resize_pixel(
    const unsigned char* __restrict__ row0, const unsigned char* __restrict__ row1, const Taps& ty,
    int ox, int in_w, float scale_x, int in_channels, const int* ch, int n_read, int to_gray, float* v)
{
    const Taps tx = bilinear_taps(ox, in_w, scale_x);
    const int col0 = tx.i0 * in_channels;
    const int col1 = tx.i1 * in_channels;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        if (k < n_read) {
            const int c = ch[k];
            // Vertical first, then horizontal: the order reference.py uses.
            const float left = __fadd_rn(__fmul_rn(ty.w0, (float)row0[col0 + c]),
                                         __fmul_rn(ty.w1, (float)row1[col0 + c]));
            const float right = __fadd_rn(__fmul_rn(ty.w0, (float)row0[col1 + c]),
                                          __fmul_rn(ty.w1, (float)row1[col1 + c]));
            v[k] = __fadd_rn(__fmul_rn(tx.w0, left), __fmul_rn(tx.w1, right));
        }
    }
    if (to_gray) {  // BT.601 luma
        v[0] = __fadd_rn(__fadd_rn(__fmul_rn(0.299f, v[0]), __fmul_rn(0.587f, v[1])),
                         __fmul_rn(0.114f, v[2]));
    }
}

template <typename OutT>
__device__ __forceinline__ void preprocess_pixels(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    OutT* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    const int oy = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (oy >= out_h || n >= batch) return;

    // Per row: the vertical taps, the two source rows and the output row.
    const Taps ty = bilinear_taps(oy, in_h, scale_y);
    const unsigned char* img = src + n * src_image_stride;
    const unsigned char* row0 = img + ty.i0 * src_pitch;
    const unsigned char* row1 = img + ty.i1 * src_pitch;
    const long long plane = (long long)out_h * out_w;
    OutT* out_row = dst + n * out_channels * plane + (long long)oy * out_w;  // (B, C, H, W)
    const int ch[3] = {ch0, ch1, ch2};
    const float scale[3] = {scale0, scale1, scale2};
    const float offset[3] = {offset0, offset1, offset2};
    const int n_read = to_gray ? 3 : out_channels;  // R, G, B when mixing gray

    // Unlike postprocess, no separate load phase: holding every pixel's 12 taps in registers
    // doubled the register count, and the 4 independent pixels already overlap their loads.
#pragma unroll
    for (int p = 0; p < SKUGEN_PIXELS_PER_THREAD; ++p) {
        const int ox = (blockIdx.x * SKUGEN_PIXELS_PER_THREAD + p) * blockDim.x + threadIdx.x;
        if (ox >= out_w) break;
        float v[3];  // resized values in [0, 255]
        resize_pixel(row0, row1, ty, ox, in_w, scale_x, in_channels, ch, n_read, to_gray, v);
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (k < out_channels) {
                store_f32(out_row + k * plane + ox, __fadd_rn(__fmul_rn(v[k], scale[k]), offset[k]));
            }
        }
    }
}

extern "C" __global__ void skugen_preprocess_f32(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    float* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    preprocess_pixels<float>(src, src_image_stride, src_pitch, in_h, in_w, in_channels, ch0, ch1, ch2,
                            to_gray, scale_y, scale_x, dst, batch, out_h, out_w, out_channels,
                            scale0, scale1, scale2, offset0, offset1, offset2);
}

extern "C" __global__ void skugen_preprocess_f16(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    __half* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    preprocess_pixels<__half>(src, src_image_stride, src_pitch, in_h, in_w, in_channels, ch0, ch1, ch2,
                             to_gray, scale_y, scale_x, dst, batch, out_h, out_w, out_channels,
                             scale0, scale1, scale2, offset0, offset1, offset2);
}

// ---- x4 variant: 4 CONSECUTIVE output pixels per thread (ox0 = 4 * global x) -----------------
// Same grid as above (SKUGEN_PIXELS_PER_THREAD == 4) and the same per-pixel arithmetic; each
// plane's 4 values leave as one 16-byte (float) / 8-byte (half) store instead of four 4- or
// 2-byte stores (the f16 upscale to 1080p ran at 22% of the DRAM floor). Unaligned rows and the
// row's tail use scalar stores.
template <typename OutT>
__device__ __forceinline__ void preprocess_quad(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    OutT* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    const int oy = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    const int ox0 = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (oy >= out_h || n >= batch || ox0 >= out_w) return;
    const int npx = min(4, out_w - ox0);

    const Taps ty = bilinear_taps(oy, in_h, scale_y);
    const unsigned char* img = src + n * src_image_stride;
    const unsigned char* row0 = img + ty.i0 * src_pitch;
    const unsigned char* row1 = img + ty.i1 * src_pitch;
    const long long plane = (long long)out_h * out_w;
    OutT* out_row = dst + n * out_channels * plane + (long long)oy * out_w + ox0;  // (B, C, H, W)
    const int ch[3] = {ch0, ch1, ch2};
    const float scale[3] = {scale0, scale1, scale2};
    const float offset[3] = {offset0, offset1, offset2};
    const int n_read = to_gray ? 3 : out_channels;

    float o[3][4];  // normalised outputs, plane-major; constant indices after unrolling (registers)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (j < npx) {
            float v[3];
            resize_pixel(row0, row1, ty, ox0 + j, in_w, scale_x, in_channels, ch, n_read, to_gray, v);
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                if (k < out_channels) o[k][j] = __fadd_rn(__fmul_rn(v[k], scale[k]), offset[k]);
            }
        }
    }
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        if (k < out_channels) {
            OutT* p = out_row + k * plane;
            if (npx == 4 && is_aligned(p, 4 * sizeof(OutT))) {
                store4_f32(p, o[k]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (j < npx) store_f32(p + j, o[k][j]);
                }
            }
        }
    }
}

extern "C" __global__ void skugen_preprocess_f32_x4(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    float* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    preprocess_quad<float>(src, src_image_stride, src_pitch, in_h, in_w, in_channels, ch0, ch1, ch2,
                           to_gray, scale_y, scale_x, dst, batch, out_h, out_w, out_channels,
                           scale0, scale1, scale2, offset0, offset1, offset2);
}

extern "C" __global__ void skugen_preprocess_f16_x4(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_h, int in_w, int in_channels, int ch0, int ch1, int ch2, int to_gray,
    float scale_y, float scale_x,
    __half* __restrict__ dst, int batch, int out_h, int out_w, int out_channels,
    float scale0, float scale1, float scale2, float offset0, float offset1, float offset2)
{
    preprocess_quad<__half>(src, src_image_stride, src_pitch, in_h, in_w, in_channels, ch0, ch1, ch2,
                            to_gray, scale_y, scale_x, dst, batch, out_h, out_w, out_channels,
                            scale0, scale1, scale2, offset0, offset1, offset2);
}
