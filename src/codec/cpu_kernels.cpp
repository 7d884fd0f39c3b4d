#include "codec/cpu_kernels.h"

#include <cmath>

#include "io/cpu_simd.h"
#include "io/torch_threads.h"

namespace alexandria::codec::cpu {

namespace {

// One lane's result the way libtorch computes it (the tails, and arguments too large for the vector reduction).
inline float snake_one(float x, float a, float inv_b) {
    float s = std::sin(x * a);
    float s2 = s * s;
    float m = s2 * inv_b;
    return m + x;
}

#ifdef ALEXANDRIA_X86
// |y| up to this reduces exactly enough with the three-part π/2 below (q < 2^17: q·C1 and q·C2 lose nothing that
// matters at fp32); larger arguments (and ±inf) take the scalar sine.
constexpr float kMaxReduced = 1.0e5f;

// sin(y) for 8 lanes: y = q·π/2 + r with |r| ≤ π/4, then sin(r) or cos(r) by q's parity (Cephes' single-precision
// minimax polynomials) and the sign by q & 2. Lanes with NaN stay NaN.
ALEXANDRIA_AVX2 inline __m256 sin8(__m256 y) {
    const __m256 two_over_pi = _mm256_set1_ps(0.636619772367581343f);
    const __m256 c1 = _mm256_set1_ps(1.5707963705062866211f);     // float(π/2)
    const __m256 c2 = _mm256_set1_ps(-4.3711388286737928865e-8f); // π/2 − c1, rounded
    const __m256 c3 = _mm256_set1_ps(-1.7151245100059014e-15f);   // what c1 + c2 still miss
    __m256 qf = _mm256_round_ps(_mm256_mul_ps(y, two_over_pi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256i q = _mm256_cvtps_epi32(qf);
    __m256 r = _mm256_fnmadd_ps(qf, c1, y);
    r = _mm256_fnmadd_ps(qf, c2, r);
    r = _mm256_fnmadd_ps(qf, c3, r);
    __m256 z = _mm256_mul_ps(r, r);
    // sin r = r + r·z·(s1 + z·(s2 + z·s3))
    __m256 ps = _mm256_fmadd_ps(z, _mm256_set1_ps(-1.9515295891e-4f), _mm256_set1_ps(8.3321608736e-3f));
    ps = _mm256_fmadd_ps(z, ps, _mm256_set1_ps(-1.6666654611e-1f));
    ps = _mm256_fmadd_ps(_mm256_mul_ps(r, z), ps, r);
    // cos r = 1 − z/2 + z²·(k1 + z·(k2 + z·k3))
    __m256 pc = _mm256_fmadd_ps(z, _mm256_set1_ps(2.443315711809948e-5f), _mm256_set1_ps(-1.388731625493765e-3f));
    pc = _mm256_fmadd_ps(z, pc, _mm256_set1_ps(4.166664568298827e-2f));
    pc = _mm256_fmadd_ps(_mm256_mul_ps(z, z), pc, _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    __m256 odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(q, one), one));
    __m256 v = _mm256_blendv_ps(ps, pc, odd);
    __m256 neg = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(q, two), 30));  // bit 1 → sign bit
    return _mm256_xor_ps(v, neg);
}

ALEXANDRIA_AVX2 void snake_row(const float* x, float* out, int64_t len, float a_, float inv_b_) {
    const __m256 a = _mm256_set1_ps(a_), inv_b = _mm256_set1_ps(inv_b_);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 limit = _mm256_set1_ps(kMaxReduced);
    int64_t t = 0;
    for (; t + 8 <= len; t += 8) {
        __m256 xv = _mm256_loadu_ps(x + t);
        __m256 y = _mm256_mul_ps(xv, a);
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(y, abs_mask), limit, _CMP_GT_OQ)) != 0) {
            for (int64_t i = t; i < t + 8; ++i) out[i] = snake_one(x[i], a_, inv_b_);
            continue;
        }
        __m256 s = sin8(y);
        __m256 m = _mm256_mul_ps(_mm256_mul_ps(s, s), inv_b);
        _mm256_storeu_ps(out + t, _mm256_add_ps(m, xv));
    }
    for (; t < len; ++t) out[t] = snake_one(x[t], a_, inv_b_);
}
#endif

}  // namespace

void snake_beta(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t rows, int64_t len,
                const float* a, const float* inv_b, int64_t channels) {
    // Chunks of whole rows; a row of the highest-rate block is 1,920 samples per frame.
    on_torch_threads(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t c = r % channels;
#ifdef ALEXANDRIA_X86
            snake_row(x + r * x_stride, out + r * out_stride, len, a[c], inv_b[c]);
#else
            for (int64_t t = 0; t < len; ++t) out[r * out_stride + t] = snake_one(x[r * x_stride + t], a[c], inv_b[c]);
#endif
        }
    });
}

}  // namespace alexandria::codec::cpu
