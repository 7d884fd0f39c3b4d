#pragma once
// What the CPU kernels (the model's products and decoding step, the codec's activations and convolutions) share.
// The build targets generic x86-64: functions marked ALEXANDRIA_AVX2 are compiled for AVX2+FMA and only called
// after the CPU check (io::cpu_kernels_enabled(), io/device.h); ALEXANDRIA_AVX512 ones after io::cpu_avx512_enabled().
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define ALEXANDRIA_X86 1
#define ALEXANDRIA_AVX2 __attribute__((target("avx2,fma")))
#define ALEXANDRIA_AVX2_LAMBDA __attribute__((target("avx2,fma"), always_inline))
// Only called after io::cpu_avx512_enabled().
#define ALEXANDRIA_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define ALEXANDRIA_AVX512_LAMBDA __attribute__((target("avx512f,avx2,fma"), always_inline))

namespace alexandria::simd {

// The 8 lanes' sum in a fixed order: (lo + hi) then pairwise.
ALEXANDRIA_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

}  // namespace alexandria::simd
#endif
