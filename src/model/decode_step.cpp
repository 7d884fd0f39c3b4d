#include "alexandria/model/decode_step.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "alexandria/io/error.h"
#include "alexandria/model/kernels.h"
#include "io/cpu_simd.h"
#include "io/torch_threads.h"

namespace alexandria::model::decode {

namespace {

void require(bool ok, const char* what) {
    if (!ok) throw Error(fmt::format("decode step: {}", what));
}

bool fp32_contiguous(const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

// The norm's weight in fp32 (a no-op for fp32 weights, the usual case: norms are never stored narrower).
at::Tensor f32(const at::Tensor& w) { return w.to(at::kFloat).contiguous(); }

// Kept out of line and compiled for the base ISA: no fused multiply-add may merge the products and sums below, so
// each rounds as libtorch's separate multiplication and addition do.
__attribute__((noinline)) void norm_row(const float* x, const float* w, float eps, float* y, int64_t n) {
    float ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * r);
}

// One head: y = rms_norm(x) then rotate-half RoPE, x·cos + (-x₂, x₁)·sin.
__attribute__((noinline)) void norm_rope_head(const float* x, const float* w, float eps, const float* cos,
                                              const float* sin, float* out, int64_t D) {
    float y[512];
    norm_row(x, w, eps, y, D);
    const int64_t half = D / 2;
    for (int64_t i = 0; i < half; ++i) out[i] = y[i] * cos[i] + (-y[i + half]) * sin[i];
    for (int64_t i = half; i < D; ++i) out[i] = y[i] * cos[i] + y[i - half] * sin[i];
}

#ifdef ALEXANDRIA_X86
using simd::hsum;

// e^x for 8 floats, within ~2 ulp for x in [-87, 88] (clamped there): x = n·ln2 + r with |r| ≤ ln2/2, e^r by a
// degree-6 polynomial (Cephes' expf coefficients), 2ⁿ built in the exponent bits.
ALEXANDRIA_AVX2 inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

ALEXANDRIA_AVX2 inline float dot(const float* a, const float* b, int64_t D) {
    const int64_t D16 = D & ~int64_t(15), D8 = D & ~int64_t(7);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i < D16; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i < D8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0), i += 8;
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < D; ++i) s += a[i] * b[i];
    return s;
}

// p[0..S) = exp(p - max p) in place; returns their sum. p has room for S rounded up to 8.
ALEXANDRIA_AVX2 float exp_shifted(float* p, int64_t S) {
    float m = p[0];
    for (int64_t j = 1; j < S; ++j) m = std::max(m, p[j]);
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    const int64_t S8 = S & ~int64_t(7);
    int64_t j = 0;
    for (; j < S8; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), mv));
        _mm256_storeu_ps(p + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    if (j < S) {
        float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::memcpy(tail, p + j, sizeof(float) * size_t(S - j));
        alignas(32) float e[8];
        _mm256_store_ps(e, exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), mv)));
        for (int64_t i = 0; j + i < S; ++i) p[j + i] = e[i], sum += e[i];
    }
    return sum;
}

// out[0..D) = (Σ_j p[j] · v[j·D ..]) / sum, over S rows of v.
ALEXANDRIA_AVX2 void weighted_rows(const float* p, const float* v, int64_t S, int64_t D, float sum, float* out) {
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    int64_t d = 0;
    for (; d + 64 <= D; d += 64) {  // 8 accumulators: one cache line pair of each value row per key
        __m256 a[8];
        for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
        for (int64_t j = 0; j < S; ++j) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float* vj = v + j * D + d;
            for (int i = 0; i < 8; ++i) a[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), a[i]);
        }
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + d + 8 * i, _mm256_mul_ps(a[i], inv));
    }
    for (; d + 8 <= D; d += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int64_t j = 0; j < S; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * D + d), a);
        _mm256_storeu_ps(out + d, _mm256_mul_ps(a, inv));
    }
    for (; d < D; ++d) {
        float a = 0;
        for (int64_t j = 0; j < S; ++j) a += p[j] * v[j * D + d];
        out[d] = a / sum;
    }
}

// Row b's T new positions for one key/value head and the G query heads that read it.
ALEXANDRIA_AVX2 void attend_group(const float* q, const float* k, const float* v, const float* qw, const float* kw,
                                  float eps, const float* cos, const float* sin, float* ck, float* cv, float* out,
                                  int64_t start, int64_t T, int64_t heads, int64_t kv_heads, int64_t kvh, int64_t D) {
    const int64_t G = heads / kv_heads;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    std::vector<float> qr(size_t(T * G * D));
    std::vector<float> p(size_t((start + T + 7) & ~int64_t(7)));
    for (int64_t t = 0; t < T; ++t) {
        const float* c = cos + t * D;
        const float* s = sin + t * D;
        norm_rope_head(k + (t * kv_heads + kvh) * D, kw, eps, c, s, ck + (start + t) * D, D);
        std::memcpy(cv + (start + t) * D, v + (t * kv_heads + kvh) * D, sizeof(float) * size_t(D));
        for (int64_t g = 0; g < G; ++g)
            norm_rope_head(q + (t * heads + kvh * G + g) * D, qw, eps, c, s, qr.data() + (t * G + g) * D, D);
    }
    for (int64_t t = 0; t < T; ++t) {
        const int64_t S = start + t + 1;  // causal: the keys up to this position
        for (int64_t g = 0; g < G; ++g) {
            const float* qh = qr.data() + (t * G + g) * D;
            for (int64_t j = 0; j < S; ++j) p[size_t(j)] = dot(qh, ck + j * D, D) * scale;
            const float sum = exp_shifted(p.data(), S);
            weighted_rows(p.data(), cv, S, D, sum, out + (t * heads + kvh * G + g) * D);
        }
    }
}

ALEXANDRIA_AVX2 void silu_mul_avx2(float* g, const float* u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, x))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
#endif

}  // namespace

bool supported() {
#ifdef ALEXANDRIA_X86
    return small_linear_supported();
#else
    return false;
#endif
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    require(fp32_contiguous(x), "rms_norm needs a contiguous fp32 CPU tensor");
    const int64_t H = x.size(-1), rows = H ? x.numel() / H : 0;
    at::Tensor w = f32(weight);
    require(w.numel() == H, "rms_norm weight size");
    at::Tensor y = at::empty_like(x);
    for (int64_t r = 0; r < rows; ++r)
        norm_row(x.data_ptr<float>() + r * H, w.data_ptr<float>(), static_cast<float>(eps), y.data_ptr<float>() + r * H, H);
    return y;
}

at::Tensor add_rms_norm(at::Tensor& x, const at::Tensor& a, const at::Tensor& weight, double eps) {
    require(fp32_contiguous(x) && fp32_contiguous(a) && x.sizes() == a.sizes(), "add_rms_norm needs equal fp32 tensors");
    float* xp = x.data_ptr<float>();
    const float* ap = a.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) xp[i] += ap[i];
    return rms_norm(x, weight, eps);
}

at::Tensor silu_mul(at::Tensor gate, const at::Tensor& up) {
    require(fp32_contiguous(gate) && fp32_contiguous(up) && gate.sizes() == up.sizes(), "silu_mul needs equal fp32 tensors");
#ifdef ALEXANDRIA_X86
    silu_mul_avx2(gate.data_ptr<float>(), up.data_ptr<float>(), gate.numel());
    return gate;
#else
    throw Error("decode step: needs an x86 CPU with AVX2");
#endif
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& q_norm,
                     const at::Tensor& k_norm, double eps, const at::Tensor& cos, const at::Tensor& sin,
                     at::Tensor& cache_k, at::Tensor& cache_v, const std::vector<int64_t>& starts, int64_t heads,
                     int64_t kv_heads) {
#ifdef ALEXANDRIA_X86
    require(fp32_contiguous(q) && fp32_contiguous(k) && fp32_contiguous(v) && q.dim() == 3,
            "q, k, v must be contiguous fp32 [B, T, heads·D]");
    require(fp32_contiguous(cache_k) && fp32_contiguous(cache_v) && cache_k.dim() == 4, "cache storage must be fp32");
    const int64_t B = q.size(0), T = q.size(1), D = cache_k.size(3), C = cache_k.size(2);
    require(kv_heads > 0 && heads % kv_heads == 0 && D <= 512 && D % 2 == 0, "head layout");
    require(q.size(2) == heads * D && k.size(2) == kv_heads * D && v.sizes() == k.sizes() && k.size(0) == B &&
                k.size(1) == T,
            "projection shapes");
    require(cache_k.size(0) >= B && cache_k.size(1) == kv_heads && cache_v.sizes() == cache_k.sizes(), "cache shape");
    require(static_cast<int64_t>(starts.size()) == B, "one start per row");
    for (int64_t s : starts) require(s >= 0 && s + T <= C, "positions beyond the cache's capacity");
    at::Tensor c = cos.to(at::kFloat).contiguous(), s = sin.to(at::kFloat).contiguous();
    require(c.numel() == B * T * D && s.numel() == B * T * D, "cos/sin must be [B, T, D]");
    at::Tensor qw = f32(q_norm), kw = f32(k_norm);
    require(qw.numel() == D && kw.numel() == D, "q/k norm weights must be [D]");
    at::Tensor out = at::empty({B, T, heads * D}, q.options());
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *cp = c.data_ptr<float>(), *sp = s.data_ptr<float>();
    float *ckp = cache_k.data_ptr<float>(), *cvp = cache_v.data_ptr<float>(), *op = out.data_ptr<float>();
    const float fe = static_cast<float>(eps);
    on_torch_threads(B * kv_heads, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / kv_heads, kvh = task % kv_heads;
            const int64_t cache_off = (b * kv_heads + kvh) * C * D;
            attend_group(qp + b * T * heads * D, kp + b * T * kv_heads * D, vp + b * T * kv_heads * D,
                         qw.data_ptr<float>(), kw.data_ptr<float>(), fe, cp + b * T * D, sp + b * T * D,
                         ckp + cache_off, cvp + cache_off, op + b * T * heads * D, starts[size_t(b)], T, heads,
                         kv_heads, kvh, D);
        }
    });
    return out;
#else
    throw Error("decode step: needs an x86 CPU with AVX2");
#endif
}

}  // namespace alexandria::model::decode
