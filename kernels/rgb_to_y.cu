// Y channel for PSNR-Y on the GPU: uint8 HWC colour (any row pitch) -> float32 (B, H, W),
//   y = ((65.481 R + 128.553 G) + 24.966 B) / 255 + 16   (MATLAB rgb2ycbcr, BasicSR).
// One thread per pixel. Grid: (ceil(w / blockDim.x), ceil(h / blockDim.y), batch).
#include "common.cuh"

extern "C" __global__ void skugen_rgb_to_y(
    const unsigned char* __restrict__ src, long long src_image_stride, long long src_pitch,
    int in_channels, int ch_r, int ch_g, int ch_b,
    float* __restrict__ dst, int batch, int h, int w)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= w || y >= h || n >= batch) return;

    const unsigned char* px = src + n * src_image_stride + y * src_pitch + x * in_channels;
    const float acc = __fadd_rn(__fadd_rn(__fmul_rn(65.481f, (float)px[ch_r]),
                                          __fmul_rn(128.553f, (float)px[ch_g])),
                                __fmul_rn(24.966f, (float)px[ch_b]));
    dst[(long long)n * h * w + (long long)y * w + x] = __fadd_rn(__fdiv_rn(acc, 255.0f), 16.0f);
}
