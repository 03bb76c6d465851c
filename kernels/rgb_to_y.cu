// Y channel for PSNR-Y on the GPU: uint8 HWC colour (any row pitch) -> float32 (B, H, W),
//   y = ((65.481 R + 128.553 G) + 24.966 B) / 255 + 16   (MATLAB rgb2ycbcr, BasicSR).
// One thread per SKUGEN_PIXELS_PER_THREAD pixels of a row.
// Grid: (ceil(w / (blockDim.x * SKUGEN_PIXELS_PER_THREAD)), ceil(h / blockDim.y), batch).
#include "common.cuh"

extern "C" __global__ void skugen_rgb_to_y(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_channels, int ch_r, int ch_g, int ch_b,
    float* __restrict__ dst, int batch, int h, int w)
{
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (y >= h || n >= batch) return;

    const unsigned char* row = src + n * src_image_stride + y * src_pitch;
    float* out_row = dst + (long long)n * h * w + (long long)y * w;  // (B, H, W)
    // Two phases so a thread's loads are all in flight together.
    unsigned char rgb[SKUGEN_PIXELS_PER_THREAD][3];
#pragma unroll
    for (int p = 0; p < SKUGEN_PIXELS_PER_THREAD; ++p) {
        const int x = (blockIdx.x * SKUGEN_PIXELS_PER_THREAD + p) * blockDim.x + threadIdx.x;
        if (x >= w) break;
        const unsigned char* px = row + x * in_channels;
        rgb[p][0] = px[ch_r];
        rgb[p][1] = px[ch_g];
        rgb[p][2] = px[ch_b];
    }
#pragma unroll
    for (int p = 0; p < SKUGEN_PIXELS_PER_THREAD; ++p) {
        const int x = (blockIdx.x * SKUGEN_PIXELS_PER_THREAD + p) * blockDim.x + threadIdx.x;
        if (x >= w) break;
        const float acc = __fadd_rn(__fadd_rn(__fmul_rn(65.481f, (float)rgb[p][0]),
                                              __fmul_rn(128.553f, (float)rgb[p][1])),
                                    __fmul_rn(24.966f, (float)rgb[p][2]));
        out_row[x] = __fadd_rn(__fdiv_rn(acc, 255.0f), 16.0f);
    }
}
