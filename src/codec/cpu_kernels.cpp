#include "codec/cpu_kernels.h"

#include <atomic>
#include <cmath>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "io/cpu_simd.h"
#include "io/torch_threads.h"

namespace alexandria::codec::cpu {

namespace {

std::atomic<int> g_winograd_layout{int(WinogradLayout::by_size)};

int64_t round_up_rows(int64_t rows) { return (rows + kWinogradRows - 1) / kWinogradRows * kWinogradRows; }

// w [rows][k] → u[rows / 6][k][6] (rows rounded up to 6 with zeros); w_at(row, c) gives w's value.
template <typename At>
void lay_out_rows(int64_t rows, int64_t k, float* u, const At& w_at) {
    for (int64_t row = 0; row < round_up_rows(rows); ++row) {
        float* dst = u + (row / kWinogradRows) * k * kWinogradRows + row % kWinogradRows;
        for (int64_t c = 0; c < k; ++c) dst[c * kWinogradRows] = row < rows ? w_at(row, c) : 0.0f;
    }
}

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

// ---------------------------------------------------------------- Winograd F(2,7)
//
// Outputs come in pairs (t, t + d) with t = 2d·m + r, r < d: the pair reads xin[t + j·d], j = 0..7. The input is
// first split into its 2d phases, Z[s][m] = xin[s + 2d·m], so that pair (r, m)'s input j is Z[r][m + j/2] (j even)
// or Z[r + d][m + (j−1)/2] (j odd): eight consecutive m are then eight consecutive floats. Pairs are numbered
// n = r·Mp + m (Mp: the pairs per phase, rounded up to 8) and processed 16 at a time (a panel): transform the
// inputs into the 8 points, one 6 × 16 product per point over the input channels, transform back into the pairs'
// two outputs, written to the output's phases Y[s][m] and interleaved into y at the end.

namespace {

// G of F(2,7): the transformed weight at point p is Σ_k G[p][k]·w[k].
constexpr double kG[8][7] = {
    {-1, 0, 0, 0, 0, 0, 0},
    {-2 / 9., -2 / 9., -2 / 9., -2 / 9., -2 / 9., -2 / 9., -2 / 9.},
    {-2 / 9., 2 / 9., -2 / 9., 2 / 9., -2 / 9., 2 / 9., -2 / 9.},
    {1 / 90., 1 / 45., 2 / 45., 4 / 45., 8 / 45., 16 / 45., 32 / 45.},
    {1 / 90., -1 / 45., 2 / 45., -4 / 45., 8 / 45., -16 / 45., 32 / 45.},
    {32 / 45., 16 / 45., 8 / 45., 4 / 45., 2 / 45., 1 / 45., 1 / 90.},
    {32 / 45., -16 / 45., 8 / 45., -4 / 45., 2 / 45., -1 / 45., 1 / 90.},
    {0, 0, 0, 0, 0, 0, 1},
};
constexpr int64_t kPoints = 8, kPanel = 16;

struct AlignedFree {
    void operator()(float* p) const { std::free(p); }
};
using Floats = std::unique_ptr<float[], AlignedFree>;
Floats aligned_floats(int64_t n) {
    void* p = std::aligned_alloc(64, size_t((n * 4 + 63) / 64 * 64));
    if (!p) throw Error("codec: out of memory for the convolution's workspace");
    return Floats(static_cast<float*>(p));
}

#ifdef ALEXANDRIA_X86
// out[6][16] = Σ_c u[c][0..6] ⊗ v[c][0..16]: six rows of weights ([ci][6]) times a panel of 16 columns ([ci][16]),
// each sum taken over c in order with one fused multiply-add per term.
ALEXANDRIA_AVX2 void product_6x16(const float* u, const float* v, int64_t ci, float* out) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t c = 0; c < ci; ++c, u += 6, v += 16) {
        const __m256 b0 = _mm256_load_ps(v), b1 = _mm256_load_ps(v + 8);
        __m256 a = _mm256_broadcast_ss(u);
        c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(u + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(u + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(u + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(u + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(u + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_store_ps(out, c00), _mm256_store_ps(out + 8, c01), _mm256_store_ps(out + 16, c10);
    _mm256_store_ps(out + 24, c11), _mm256_store_ps(out + 32, c20), _mm256_store_ps(out + 40, c21);
    _mm256_store_ps(out + 48, c30), _mm256_store_ps(out + 56, c31), _mm256_store_ps(out + 64, c40);
    _mm256_store_ps(out + 72, c41), _mm256_store_ps(out + 80, c50), _mm256_store_ps(out + 88, c51);
}

// Two panels at once with 512-bit registers: the same terms in the same order per output as product_6x16, so
// the same bits, at twice the multiply-adds per instruction.
ALEXANDRIA_AVX512 void product_6x32(const float* u, const float* v0, const float* v1, int64_t ci, float* out0,
                                    float* out1) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t c = 0; c < ci; ++c, u += 6, v0 += 16, v1 += 16) {
        const __m512 b0 = _mm512_load_ps(v0), b1 = _mm512_load_ps(v1);
        __m512 a = _mm512_set1_ps(u[0]);
        c00 = _mm512_fmadd_ps(a, b0, c00), c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(u[1]);
        c10 = _mm512_fmadd_ps(a, b0, c10), c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(u[2]);
        c20 = _mm512_fmadd_ps(a, b0, c20), c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(u[3]);
        c30 = _mm512_fmadd_ps(a, b0, c30), c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(u[4]);
        c40 = _mm512_fmadd_ps(a, b0, c40), c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(u[5]);
        c50 = _mm512_fmadd_ps(a, b0, c50), c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    _mm512_store_ps(out0, c00), _mm512_store_ps(out0 + 16, c10), _mm512_store_ps(out0 + 32, c20);
    _mm512_store_ps(out0 + 48, c30), _mm512_store_ps(out0 + 64, c40), _mm512_store_ps(out0 + 80, c50);
    _mm512_store_ps(out1, c01), _mm512_store_ps(out1 + 16, c11), _mm512_store_ps(out1 + 32, c21);
    _mm512_store_ps(out1 + 48, c31), _mm512_store_ps(out1 + 64, c41), _mm512_store_ps(out1 + 80, c51);
}

// Six rows times panel v0 and, when v1 is given, panel v1 (out0, out1: [6][16] each).
inline void product_panels(const float* u, const float* v0, const float* v1, int64_t ci, float* out0, float* out1) {
    if (v1 && io::cpu_avx512_enabled()) return product_6x32(u, v0, v1, ci, out0, out1);
    product_6x16(u, v0, ci, out0);
    if (v1) product_6x16(u, v1, ci, out1);
}

// Eight pairs' inputs d[0..8] (8 lanes each) → their 8 points, stored at v + p·stride.
ALEXANDRIA_AVX2 inline void input_points(const __m256* d, float* v, int64_t stride) {
    auto k = [](float f) ALEXANDRIA_AVX2_LAMBDA { return _mm256_set1_ps(f); };
    _mm256_store_ps(v, _mm256_fmadd_ps(k(5.25f), _mm256_sub_ps(d[2], d[4]), _mm256_sub_ps(d[6], d[0])));
    _mm256_store_ps(v + 7 * stride, _mm256_fmadd_ps(k(5.25f), _mm256_sub_ps(d[3], d[5]), _mm256_sub_ps(d[7], d[1])));
    __m256 a = _mm256_fnmadd_ps(k(4.25f), d[4], _mm256_add_ps(d[2], d[6]));
    __m256 b = _mm256_fnmadd_ps(k(4.25f), d[3], _mm256_add_ps(d[1], d[5]));
    _mm256_store_ps(v + 1 * stride, _mm256_add_ps(a, b));
    _mm256_store_ps(v + 2 * stride, _mm256_sub_ps(a, b));
    a = _mm256_fmadd_ps(k(0.25f), d[2], _mm256_fnmadd_ps(k(1.25f), d[4], d[6]));
    b = _mm256_fmadd_ps(k(0.5f), d[1], _mm256_fmadd_ps(k(-2.5f), d[3], _mm256_mul_ps(k(2.0f), d[5])));
    _mm256_store_ps(v + 3 * stride, _mm256_add_ps(a, b));
    _mm256_store_ps(v + 4 * stride, _mm256_sub_ps(a, b));
    a = _mm256_fmadd_ps(k(4.0f), d[2], _mm256_fnmadd_ps(k(5.0f), d[4], d[6]));
    b = _mm256_fmadd_ps(k(2.0f), d[1], _mm256_fmadd_ps(k(-2.5f), d[3], _mm256_mul_ps(k(0.5f), d[5])));
    _mm256_store_ps(v + 5 * stride, _mm256_add_ps(a, b));
    _mm256_store_ps(v + 6 * stride, _mm256_sub_ps(a, b));
}

// The 8 points' products m[p] (8 lanes) → the pairs' first and second outputs.
ALEXANDRIA_AVX2 inline void output_pair(const float* m, int64_t stride, float* y0, float* y1) {
    __m256 m0 = _mm256_load_ps(m), m1 = _mm256_load_ps(m + stride), m2 = _mm256_load_ps(m + 2 * stride),
           m3 = _mm256_load_ps(m + 3 * stride), m4 = _mm256_load_ps(m + 4 * stride),
           m5 = _mm256_load_ps(m + 5 * stride), m6 = _mm256_load_ps(m + 6 * stride),
           m7 = _mm256_load_ps(m + 7 * stride);
    __m256 s12 = _mm256_add_ps(m1, m2), s34 = _mm256_add_ps(m3, m4), s56 = _mm256_add_ps(m5, m6);
    __m256 first = _mm256_add_ps(_mm256_add_ps(m0, s12), _mm256_add_ps(s34, s56));
    __m256 second = _mm256_add_ps(_mm256_sub_ps(m1, m2), m7);
    second = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), _mm256_sub_ps(m3, m4), second);
    second = _mm256_fmadd_ps(_mm256_set1_ps(0.5f), _mm256_sub_ps(m5, m6), second);
    _mm256_storeu_ps(y0, first);
    _mm256_storeu_ps(y1, second);
}

// What every part of one convolution call reads (see the comment above the namespace).
struct Winograd7Call {
    const float* xin;
    int64_t ci, len, d, co;
    const float* u;
    int64_t phases = 0, mp = 0, zlen = 0, in_len = 0, n_pairs = 0, panels = 0, row_blocks = 0;
    const float* z = nullptr;  // the input's phases [ci][phases][zlen]
    float* yz = nullptr;       // the output's phases [co][phases][mp]

    const float* weights(int64_t point, int64_t row_block) const {
        return u + (point * row_blocks + row_block) * ci * kWinogradRows;
    }
};

// Panel `panel`'s 16 pairs → their 8 points, point p's [ci][16] at vq + p·vstride.
ALEXANDRIA_AVX2 void panel_points(const Winograd7Call& k, int64_t panel, float* vq, int64_t vstride) {
    for (int64_t half = 0; half < 2; ++half) {
        const int64_t n0 = panel * kPanel + half * 8;
        float* vh = vq + half * 8;
        if (n0 >= k.n_pairs) {
            for (int64_t c = 0; c < k.ci; ++c)
                for (int64_t p = 0; p < kPoints; ++p) _mm256_store_ps(vh + c * kPanel + p * vstride, _mm256_setzero_ps());
            continue;
        }
        const int64_t r = n0 / k.mp, m0 = n0 % k.mp;
        for (int64_t c = 0; c < k.ci; ++c) {
            const float* even = k.z + (c * k.phases + r) * k.zlen + m0;
            const float* odd = k.z + (c * k.phases + r + k.d) * k.zlen + m0;
            __m256 dv[8];
            for (int j = 0; j < 4; ++j) {
                dv[2 * j] = _mm256_loadu_ps(even + j);
                dv[2 * j + 1] = _mm256_loadu_ps(odd + j);
            }
            input_points(dv, vh + c * kPanel, vstride);
        }
    }
}

// Row block rb's products for panel `panel` at the 8 points (point p's [6][16] at prod + p·pstride) → the pairs'
// outputs, into the output's phases.
ALEXANDRIA_AVX2 void panel_outputs(const Winograd7Call& k, int64_t rb, int64_t panel, const float* prod,
                                   int64_t pstride) {
    for (int64_t half = 0; half < 2; ++half) {
        const int64_t n0 = panel * kPanel + half * 8;
        if (n0 >= k.n_pairs) continue;
        const int64_t r = n0 / k.mp, m0 = n0 % k.mp;
        for (int64_t row = 0; row < kWinogradRows; ++row) {
            const int64_t o = rb * kWinogradRows + row;
            output_pair(prod + row * kPanel + half * 8, pstride, k.yz + (o * k.phases + r) * k.mp + m0,
                        k.yz + (o * k.phases + r + k.d) * k.mp + m0);
        }
    }
}

// Few input channels (the weights at all points stay in cache): groups of `per_group` panels, each thread taking
// whole groups, so a group's points are made, multiplied and turned into outputs by one thread in one pass.
ALEXANDRIA_AVX2 void winograd7_groups(const Winograd7Call& k, int64_t per_group, int64_t g0, int64_t g1, float* v) {
    const int64_t ci = k.ci;
    alignas(64) float prod[2 * kPoints * kWinogradRows * kPanel];
    const int64_t pstride = 2 * kWinogradRows * kPanel;  // [point][panel of the two][6][16]
    for (int64_t g = g0; g < g1; ++g) {
        const int64_t first = g * per_group, count = std::min(per_group, k.panels - first);
        const int64_t vstride = count * ci * kPanel;  // between points
        for (int64_t q = 0; q < count; ++q) panel_points(k, first + q, v + q * ci * kPanel, vstride);
        for (int64_t rb = 0; rb < k.row_blocks; ++rb)
            for (int64_t q = 0; q < count; q += 2) {
                const bool two = q + 1 < count;
                for (int64_t p = 0; p < kPoints; ++p) {
                    const float* vp = v + p * vstride + q * ci * kPanel;
                    float* out = prod + p * pstride;
                    product_panels(k.weights(p, rb), vp, two ? vp + ci * kPanel : nullptr, ci, out,
                                   out + kWinogradRows * kPanel);
                }
                panel_outputs(k, rb, first + q, prod, pstride);
                if (two) panel_outputs(k, rb, first + q + 1, prod + kWinogradRows * kPanel, pstride);
            }
    }
}

// Many input channels (the weights, 8 × co × ci floats, far larger than a core's cache): a chunk of panels' points
// is made once, then each thread takes a range of row blocks and, point by point, passes each block's weights once
// over the whole chunk (that point's part of the chunk, ci × 16 floats per panel, stays in the core's L2). The
// products wait in `prod` [row block][point][panel][6][16] until the block's 8 points are done.
ALEXANDRIA_AVX2 void winograd7_rows(const Winograd7Call& k, int64_t first, int64_t count, int64_t chunk,
                                    const float* v, float* prod, int64_t rb0, int64_t rb1) {
    const int64_t ci = k.ci, vstride = chunk * k.ci * kPanel, pstride = chunk * kWinogradRows * kPanel;
    for (int64_t p = 0; p < kPoints; ++p)
        for (int64_t rb = rb0; rb < rb1; ++rb)
            for (int64_t q = 0; q < count; q += 2) {
                const float* vp = v + p * vstride + q * ci * kPanel;
                float* out = prod + (rb * kPoints + p) * pstride + q * kWinogradRows * kPanel;
                product_panels(k.weights(p, rb), vp, q + 1 < count ? vp + ci * kPanel : nullptr, ci, out,
                               out + kWinogradRows * kPanel);
            }
    for (int64_t rb = rb0; rb < rb1; ++rb)
        for (int64_t q = 0; q < count; ++q)
            panel_outputs(k, rb, first + q, prod + rb * kPoints * pstride + q * kWinogradRows * kPanel, pstride);
}

// The bytes a core's share of its caches holds for a product's columns: most of L2.
int64_t column_budget() {
    static const int64_t bytes = [] {
        long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        return int64_t(l2 > 0 ? l2 : 512 * 1024) * 5 / 8;
    }();
    return bytes;
}

void winograd7_run(const float* xin, int64_t ci, int64_t len, int64_t d, const float* u, const float* bias,
                   int64_t co, float* y) {
    Winograd7Call k{xin, ci, len, d, co, u};
    k.phases = 2 * d;
    const int64_t pairs = (len + k.phases - 1) / k.phases;  // per phase r < d
    k.mp = (pairs + 7) / 8 * 8;
    k.zlen = k.mp + 8;  // m + 3 for the last taps, rounded to whole vectors
    k.in_len = 6 * d + len;
    k.n_pairs = d * k.mp;  // numbered r·mp + m
    k.panels = (k.n_pairs + kPanel - 1) / kPanel;
    k.row_blocks = co / kWinogradRows;

    // 1. the input's phases, zeros past its end
    Floats z = aligned_floats(ci * k.phases * k.zlen);
    on_torch_threads(ci, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
            for (int64_t s = 0; s < k.phases; ++s) {
                float* dst = z.get() + (c * k.phases + s) * k.zlen;
                const float* src = xin + c * k.in_len;
                for (int64_t m = 0; m < k.zlen; ++m) {
                    const int64_t t = s + k.phases * m;
                    dst[m] = t < k.in_len ? src[t] : 0.0f;
                }
            }
    });
    k.z = z.get();
    Floats yz = aligned_floats(co * k.phases * k.mp);
    k.yz = yz.get();

    // 2. the pairs
    const auto layout = WinogradLayout(g_winograd_layout.load(std::memory_order_relaxed));
    const bool by_rows = layout == WinogradLayout::by_size ? kPoints * co * ci * 4 > 2 * column_budget()
                                                           : layout == WinogradLayout::rows;
    if (by_rows) {
        const int64_t per_panel = ci * kPanel * 4;  // one point's columns
        const int64_t chunk = std::min(k.panels, std::max<int64_t>(2, column_budget() / per_panel / 2 * 2));
        Floats v = aligned_floats(kPoints * chunk * ci * kPanel);
        Floats prod = aligned_floats(k.row_blocks * kPoints * chunk * kWinogradRows * kPanel);
        for (int64_t first = 0; first < k.panels; first += chunk) {
            const int64_t count = std::min(chunk, k.panels - first);
            on_torch_threads(count, [&](int64_t q0, int64_t q1) {
                for (int64_t q = q0; q < q1; ++q) panel_points(k, first + q, v.get() + q * ci * kPanel, chunk * ci * kPanel);
            });
            on_torch_threads(k.row_blocks, [&](int64_t rb0, int64_t rb1) {
                winograd7_rows(k, first, count, chunk, v.get(), prod.get(), rb0, rb1);
            });
        }
    } else {
        // panels per group: the group's points (8 × ci × 16 floats per panel) within ~0.5 MB
        const int64_t per_group = std::max<int64_t>(1, std::min<int64_t>(8, 1024 / ci));
        const int64_t groups = (k.panels + per_group - 1) / per_group;
        std::vector<Floats> workspaces;  // one per thread (the body must not throw, so allocated here)
        for (int64_t t = 0; t < std::max<int64_t>(1, at::get_num_threads()); ++t)
            workspaces.push_back(aligned_floats(kPoints * per_group * ci * kPanel));
        on_torch_threads(groups, [&](int64_t g0, int64_t g1) {
            const int64_t t = std::min<int64_t>(omp_get_thread_num(), int64_t(workspaces.size()) - 1);
            winograd7_groups(k, per_group, g0, g1, workspaces[size_t(t)].get());
        });
    }

    // 3. the output's phases interleaved, plus the bias
    on_torch_threads(co, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
            const float b = bias ? bias[o] : 0.0f;
            float* dst = y + o * len;
            for (int64_t s = 0; s < k.phases; ++s) {
                const float* src = k.yz + (o * k.phases + s) * k.mp;
                for (int64_t m = 0, t = s; t < len; ++m, t += k.phases) dst[t] = src[m] + b;
            }
        }
    });
}
#endif

}  // namespace

int64_t winograd7_weights_size(int64_t co, int64_t ci) { return kPoints * co * ci; }

void winograd7_transform_weights(const float* w, int64_t co, int64_t ci, float* u) {
    // u[p]: point p's [co × ci] weights laid out as the product reads them
    for (int64_t p = 0; p < kPoints; ++p)
        lay_out_rows(co, ci, u + p * co * ci, [&](int64_t o, int64_t c) {
            double sum = 0;
            for (int k = 0; k < 7; ++k) sum += kG[p][k] * double(w[(o * ci + c) * 7 + k]);
            return float(sum);
        });
}

void winograd7_conv(const float* xin, int64_t ci, int64_t len, int64_t dilation, const float* u, const float* bias,
                    int64_t co, float* y) {
#ifdef ALEXANDRIA_X86
    if (co % kWinogradRows != 0) throw Error("winograd7_conv: output channels not a multiple of 6");
    winograd7_run(xin, ci, len, dilation, u, bias, co, y);
#else
    throw Error("winograd7_conv: needs an x86 CPU with AVX2");
#endif
}

// ---------------------------------------------------------------- products with re-laid weights
//
// [rows × k] weights, laid out as u[rows / 6][k][6], times columns packed 16 at a time, v[panel][k][16]: each
// 6 × 16 block of the product goes to a store(row_block, panel, block) that puts it where the layer wants it.

namespace {

#ifdef ALEXANDRIA_X86
struct ProductPlan {
    int64_t k, row_blocks, panels;
    int64_t per_group = 1;   // panels whose columns stay in cache while every row block passes over them
    int64_t row_splits = 1;  // row ranges per group, so that few panels still give every thread work
    int64_t tasks() const { return (panels + per_group - 1) / per_group * row_splits; }
};

ProductPlan plan_products(int64_t k, int64_t rows, int64_t panels) {
    ProductPlan p{k, round_up_rows(rows) / kWinogradRows, panels};
    // the group's columns stay in L2 while each row block's weights pass over all of them once
    p.per_group = std::max<int64_t>(1, column_budget() / (k * kPanel * 4));
    const int64_t groups = (panels + p.per_group - 1) / p.per_group;
    const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
    p.row_splits = std::max<int64_t>(1, std::min(p.row_blocks, 2 * threads / groups));
    return p;
}

template <typename Store>
ALEXANDRIA_AVX2 void product_tasks(const ProductPlan& plan, const float* u, const float* v, int64_t t0, int64_t t1,
                                   const Store& store) {
    alignas(64) float prod[2 * kWinogradRows * kPanel];
    for (int64_t task = t0; task < t1; ++task) {
        const int64_t g = task / plan.row_splits, split = task % plan.row_splits;
        const int64_t rb0 = split * plan.row_blocks / plan.row_splits;
        const int64_t rb1 = (split + 1) * plan.row_blocks / plan.row_splits;
        const int64_t p0 = g * plan.per_group, p1 = std::min(plan.panels, p0 + plan.per_group);
        for (int64_t rb = rb0; rb < rb1; ++rb)
            for (int64_t p = p0; p < p1; p += 2) {
                const bool two = p + 1 < p1;
                const float* vp = v + p * plan.k * kPanel;
                product_panels(u + rb * plan.k * kWinogradRows, vp, two ? vp + plan.k * kPanel : nullptr, plan.k, prod,
                               prod + kWinogradRows * kPanel);
                store(rb, p, prod);
                if (two) store(rb, p + 1, prod + kWinogradRows * kPanel);
            }
    }
}

template <typename Store>
void run_products(const ProductPlan& plan, const float* u, const float* v, const Store& store) {
    on_torch_threads(plan.tasks(), [&](int64_t t0, int64_t t1) { product_tasks(plan, u, v, t0, t1, store); });
}
#endif


}  // namespace

// ---------------------------------------------------------------- transposed convolution (kernel 2s, stride s)

int64_t transposed_weights_size(int64_t co, int64_t ci, int64_t stride) { return stride * co * 2 * ci; }

void transform_transposed_weights(const float* w, int64_t co, int64_t ci, int64_t s, float* u) {
    // row j·co + o; column c < ci meets x[t+1] (tap j), ci + c meets x[t] (tap j + s)
    lay_out_rows(s * co, 2 * ci, u, [&](int64_t row, int64_t c) {
        const int64_t j = row / co, o = row % co;
        return c < ci ? w[(c * co + o) * 2 * s + j] : w[((c - ci) * co + o) * 2 * s + j + s];
    });
}

void transposed_conv(const float* xin, int64_t ci, int64_t len, int64_t s, const float* u, const float* bias,
                     int64_t co, float* y) {
#ifdef ALEXANDRIA_X86
    if ((s * co) % kWinogradRows != 0) throw Error("transposed_conv: stride × output channels not a multiple of 6");
    const int64_t k = 2 * ci, panels = (len + kPanel - 1) / kPanel, in_len = len + 1;
    // the columns: (x[t+1]; x[t]) for t < len, zeros past the end
    Floats v = aligned_floats(panels * k * kPanel);
    on_torch_threads(panels, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
            for (int64_t r = 0; r < k; ++r) {
                const float* src = xin + (r % ci) * in_len + (r < ci ? 1 : 0);
                float* dst = v.get() + (p * k + r) * kPanel;
                for (int64_t i = 0; i < kPanel; ++i) {
                    const int64_t t = p * kPanel + i;
                    dst[i] = t < len ? src[t] : 0.0f;
                }
            }
    });
    const int64_t out_len = len * s;
    run_products(plan_products(k, s * co, panels), u, v.get(), [&](int64_t rb, int64_t p, const float* prod) {
        const int64_t t_begin = p * kPanel, t_end = std::min(len, t_begin + kPanel);
        for (int64_t i = 0; i < kWinogradRows; ++i) {
            const int64_t row = rb * kWinogradRows + i, j = row / co, o = row % co;
            const float b = bias ? bias[o] : 0.0f;
            float* dst = y + o * out_len + j;
            for (int64_t t = t_begin; t < t_end; ++t) dst[t * s] = prod[i * kPanel + t - t_begin] + b;
        }
    });
#else
    throw Error("transposed_conv: needs an x86 CPU with AVX2");
#endif
}

// ---------------------------------------------------------------- linear layers

int64_t linear_weights_size(int64_t n, int64_t k) { return round_up_rows(n) * k; }

void transform_linear_weights(const float* w, int64_t n, int64_t k, float* u) {
    lay_out_rows(n, k, u, [&](int64_t row, int64_t c) { return w[row * k + c]; });
}

void linear(const float* x, int64_t rows, int64_t k, const float* u, const float* bias, int64_t n, float* y) {
#ifdef ALEXANDRIA_X86
    const int64_t panels = (rows + kPanel - 1) / kPanel;
    // the columns: x's rows, 16 at a time, transposed (zeros past the last row)
    Floats v = aligned_floats(panels * k * kPanel);
    on_torch_threads(panels, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            float* dst = v.get() + p * k * kPanel;
            for (int64_t i = 0; i < kPanel; ++i) {
                const int64_t r = p * kPanel + i;
                if (r < rows)
                    for (int64_t c = 0; c < k; ++c) dst[c * kPanel + i] = x[r * k + c];
                else
                    for (int64_t c = 0; c < k; ++c) dst[c * kPanel + i] = 0.0f;
            }
        }
    });
    run_products(plan_products(k, n, panels), u, v.get(), [&](int64_t rb, int64_t p, const float* prod) {
        const int64_t r_begin = p * kPanel, r_end = std::min(rows, r_begin + kPanel);
        for (int64_t i = 0; i < kWinogradRows; ++i) {
            const int64_t o = rb * kWinogradRows + i;
            if (o >= n) break;  // the zero rows that round n up to 6
            const float b = bias ? bias[o] : 0.0f;
            for (int64_t r = r_begin; r < r_end; ++r) y[r * n + o] = prod[i * kPanel + r - r_begin] + b;
        }
    });
#else
    throw Error("linear: needs an x86 CPU with AVX2");
#endif
}

void use_winograd_layout(WinogradLayout layout) { g_winograd_layout = int(layout); }

}  // namespace alexandria::codec::cpu
