#include "alexandria/model/kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#ifdef __linux__
#include <sys/mman.h>
#endif
#include <fmt/format.h>

#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "io/cpu_simd.h"
#include "io/torch_threads.h"

namespace alexandria::model {

namespace {

#ifdef ALEXANDRIA_X86
using simd::hsum;

ALEXANDRIA_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
ALEXANDRIA_AVX2 inline __m256 load8(const uint16_t* p) {
    // bf16 → fp32 is a 16-bit shift into the high half.
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) {
    uint32_t u = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}


// One weight row against one row of x: *y = x · wr (the leftover rows of a batched product).
template <typename W>
ALEXANDRIA_AVX2 void dot_row(const float* x, const W* wr, float* y, int64_t K) {
    const int64_t K8 = K & ~int64_t(7);
    __m256 a = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) a = _mm256_fmadd_ps(load8(wr + k), _mm256_loadu_ps(x + k), a);
    float s = hsum(a);
    for (int64_t k = K8; k < K; ++k) s += load1(wr + k) * x[k];
    *y = s;
}

// Four weight rows (w, w + K, w + 2K, w + 3K) against MR rows of x: y[j * N + r] = x[j] · w_r. Each sum is
// accumulated exactly as dot_row() and the one-row path accumulate it. `next` (or null): the four rows the
// following tile reads, requested meanwhile: a tile computes long enough per byte that the hardware prefetcher
// alone leaves the next rows' memory reads unoverlapped (weights streamed from memory, 1024 x 3072 bf16, 2
// threads: 8 rows of x 990 -> 765 us per matrix, 16 rows 1,420 -> 1,220 us; into L2 only: 810 / 1,260).
template <typename W, int MR>
ALEXANDRIA_AVX2 void tile4(const float* x, const W* w, float* y, int64_t N, int64_t K, const W* next) {
    constexpr int64_t kLine = 64 / sizeof(W);  // elements per cache line
    const int64_t K8 = K & ~int64_t(7);
    __m256 a[4][MR];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 3
        for (int j = 0; j < MR; ++j) a[r][j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) {
        if (next && (k & (kLine - 1)) == 0)
            for (int r = 0; r < 4; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * K + k), _MM_HINT_T0);
        __m256 xv[MR];
#pragma GCC unroll 3
        for (int j = 0; j < MR; ++j) xv[j] = _mm256_loadu_ps(x + j * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            const __m256 wv = load8(w + r * K + k);
#pragma GCC unroll 3
            for (int j = 0; j < MR; ++j) a[r][j] = _mm256_fmadd_ps(wv, xv[j], a[r][j]);
        }
    }
    for (int r = 0; r < 4; ++r)
        for (int j = 0; j < MR; ++j) {
            float s = hsum(a[r][j]);
            for (int64_t k = K8; k < K; ++k) s += load1(w + r * K + k) * x[j * K + k];
            y[j * N + r] = s;
        }
}

// Rows [n0, n1) of y[M, N] = x[M, K] · W[N, K]ᵀ. Each (n, m) sum: one 8-lane accumulator over k in steps of 8,
// the lanes summed by hsum, then the tail — the same whatever M is.
template <typename W>
ALEXANDRIA_AVX2 void rows_kernel(const float* x, const W* w, float* y, int64_t M, int64_t N, int64_t K, int64_t n0,
                                 int64_t n1) {
    const int64_t K8 = K & ~int64_t(7);
    if (M == 1) {
        // One row: four weight rows at a time keep four independent FMA chains in flight.
        int64_t n = n0;
        for (; n + 4 <= n1; n += 4) {
            const W *w0 = w + n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t k = 0; k < K8; k += 8) {
                __m256 xv = _mm256_loadu_ps(x + k);
                a0 = _mm256_fmadd_ps(load8(w0 + k), xv, a0);
                a1 = _mm256_fmadd_ps(load8(w1 + k), xv, a1);
                a2 = _mm256_fmadd_ps(load8(w2 + k), xv, a2);
                a3 = _mm256_fmadd_ps(load8(w3 + k), xv, a3);
            }
            float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
            const W* ws[4] = {w0, w1, w2, w3};
            for (int r = 0; r < 4; ++r) {
                for (int64_t k = K8; k < K; ++k) s[r] += load1(ws[r] + k) * x[k];
                y[n + r] = s[r];
            }
        }
        for (; n < n1; ++n) dot_row(x, w + n * K, y + n, K);
        return;
    }
    // Several rows: tiles of 4 weight rows × up to 3 rows of x (12 accumulators, 16 registers in all), so each
    // load feeds 1.7 FMAs instead of under 1 (one weight row against many x rows reloads every x row per weight).
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        const W* next = n + 8 <= n1 ? w + (n + 4) * K : nullptr;
        for (int64_t m0 = 0; m0 < M; m0 += 3) {
            switch (std::min<int64_t>(3, M - m0)) {
                case 3: tile4<W, 3>(x + m0 * K, w + n * K, y + m0 * N + n, N, K, m0 == 0 ? next : nullptr); break;
                case 2: tile4<W, 2>(x + m0 * K, w + n * K, y + m0 * N + n, N, K, m0 == 0 ? next : nullptr); break;
                default: tile4<W, 1>(x + m0 * K, w + n * K, y + m0 * N + n, N, K, m0 == 0 ? next : nullptr);
            }
        }
    }
    for (; n < n1; ++n)
        for (int64_t m = 0; m < M; ++m) dot_row(x + m * K, w + n * K, y + m * N + n, K);
}

// ---- The inference layout (pack_weight) -------------------------------------------------------------------
// Output rows in blocks of 16, each block stored k-major: for every k, the 16 rows' weights side by side (bf16:
// as the pairs (n, n + 8), so that one 32-bit lane holds rows n and n + 8: a shift widens the first, a mask the
// second). A step of k is then one 32-byte load, two single-uop widenings and 2 × rows-of-x FMAs against
// broadcast x values: the accumulators hold outputs, not partial dot products, and need no horizontal sums.
ALEXANDRIA_AVX2 inline void load_block_row(const float* p, __m256& lo, __m256& hi) {
    lo = _mm256_loadu_ps(p);
    hi = _mm256_loadu_ps(p + 8);
}
ALEXANDRIA_AVX2 inline void load_block_row(const uint16_t* p, __m256& lo, __m256& hi) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    hi = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

ALEXANDRIA_AVX2 inline void load_block_row(const int8_t* p, __m256& lo, __m256& hi) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
}

// MR rows of x against NB consecutive blocks (16 × NB outputs). Every output is one accumulator lane summing
// x[m, k] · w[n, k] for k = 0, 1, ..., K - 1 in that order, whatever MR and NB are: a row's values never depend on
// its neighbours. `next` (or null): the block the following tile reads, requested meanwhile. int8 weights: the
// sum is then multiplied by the row's scale (`scale`, 16 × NB values).
template <typename W, int MR, int NB>
ALEXANDRIA_AVX2 void packed_tile(const float* x, const W* p, float* y, int64_t N, int64_t K, const W* next,
                                 const float* scale) {
    __m256 a[MR][NB][2];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) a[m][b][0] = a[m][b][1] = _mm256_setzero_ps();
    const auto step = [&](int64_t k) ALEXANDRIA_AVX2_LAMBDA {
        __m256 lo[NB], hi[NB];
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) load_block_row(p + (b * K + k) * 16, lo[b], hi[b]);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
            const __m256 xv = _mm256_broadcast_ss(x + m * K + k);
#pragma GCC unroll 4
            for (int b = 0; b < NB; ++b) {
                a[m][b][0] = _mm256_fmadd_ps(lo[b], xv, a[m][b][0]);
                a[m][b][1] = _mm256_fmadd_ps(hi[b], xv, a[m][b][1]);
            }
        }
    };
    constexpr int64_t kSteps = 64 / (16 * sizeof(W));  // k steps per cache line of a block
    int64_t k = 0;
    for (; k + kSteps <= K; k += kSteps) {
        if (next) _mm_prefetch(reinterpret_cast<const char*>(next + k * 16), _MM_HINT_T0);
#pragma GCC unroll 2
        for (int64_t s = 0; s < kSteps; ++s) step(k + s);
    }
    for (; k < K; ++k) step(k);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) {
            if constexpr (std::is_same_v<W, int8_t>) {
                a[m][b][0] = _mm256_mul_ps(a[m][b][0], _mm256_loadu_ps(scale + b * 16));
                a[m][b][1] = _mm256_mul_ps(a[m][b][1], _mm256_loadu_ps(scale + b * 16 + 8));
            }
            _mm256_storeu_ps(y + m * N + b * 16, a[m][b][0]);
            _mm256_storeu_ps(y + m * N + b * 16 + 8, a[m][b][1]);
        }
}

// ---- The same tiles in 512-bit registers (AVX-512F): a block's 16 outputs in one register, half the
// multiply-adds of the AVX2 tiles. Every output is still one lane summing x[m, k] · w[n, k] for k = 0, 1, ..., K - 1
// with one fused multiply-add per term, so the results are the AVX2 tiles' bits. A bf16 block holds its rows as
// (n, n + 8) pairs: the lanes stay in that order until the stores, where one permutation puts them back.
ALEXANDRIA_AVX512 inline __m512 load_block(const float* p) { return _mm512_loadu_ps(p); }
ALEXANDRIA_AVX512 inline __m512 load_block(const uint16_t* p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}
ALEXANDRIA_AVX512 inline __m512 load_block(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

template <typename W, int MR, int NB>
ALEXANDRIA_AVX512 void packed_tile512(const float* x, const W* p, float* y, int64_t N, int64_t K, const W* next,
                                      const float* scale) {
    __m512 a[MR][NB];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) a[m][b] = _mm512_setzero_ps();
    const auto step = [&](int64_t k) ALEXANDRIA_AVX512_LAMBDA {
        __m512 w[NB];
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) w[b] = load_block(p + (b * K + k) * 16);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
            const __m512 xv = _mm512_set1_ps(x[m * K + k]);
#pragma GCC unroll 4
            for (int b = 0; b < NB; ++b) a[m][b] = _mm512_fmadd_ps(w[b], xv, a[m][b]);
        }
    };
    constexpr int64_t kSteps = 64 / (16 * sizeof(W));
    int64_t k = 0;
    for (; k + kSteps <= K; k += kSteps) {
        if (next) _mm_prefetch(reinterpret_cast<const char*>(next + k * 16), _MM_HINT_T0);
#pragma GCC unroll 2
        for (int64_t s = 0; s < kSteps; ++s) step(k + s);
    }
    for (; k < K; ++k) step(k);
    const __m512i pairs_back = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) {
            __m512 v = a[m][b];
            if constexpr (std::is_same_v<W, uint16_t>) v = _mm512_permutexvar_ps(pairs_back, v);
            if constexpr (std::is_same_v<W, int8_t>) v = _mm512_mul_ps(v, _mm512_loadu_ps(scale + b * 16));
            _mm512_storeu_ps(y + m * N + b * 16, v);
        }
}

// The two tile families, and how many blocks one tile takes where there are two rows and in the groups of up to 6
// rows, so that enough independent sums are in flight: AVX2 holds a block in two registers, AVX-512 in one.
struct Avx2Tiles {
    static constexpr int kTwoRowBlocks = 2, kGroupBlocks = 1;
    template <typename W, int MR, int NB>
    static void tile(const float* x, const W* p, float* y, int64_t N, int64_t K, const W* next, const float* scale) {
        packed_tile<W, MR, NB>(x, p, y, N, K, next, scale);
    }
};
struct Avx512Tiles {
    static constexpr int kTwoRowBlocks = 4, kGroupBlocks = 2;
    template <typename W, int MR, int NB>
    static void tile(const float* x, const W* p, float* y, int64_t N, int64_t K, const W* next, const float* scale) {
        packed_tile512<W, MR, NB>(x, p, y, N, K, next, scale);
    }
};

// MR rows against n consecutive blocks (1, or Tiles::kGroupBlocks).
template <typename Tiles, typename W, int MR>
void group_tile(int64_t n, const float* x, const W* p, float* y, int64_t N, int64_t K, const W* next,
                const float* scale) {
    if constexpr (Tiles::kGroupBlocks > 1)
        if (n == Tiles::kGroupBlocks) return Tiles::template tile<W, MR, Tiles::kGroupBlocks>(x, p, y, N, K, next, scale);
    Tiles::template tile<W, MR, 1>(x, p, y, N, K, next, scale);
}

// Rows [0, M) of x against blocks [b0, b1) with one tile family: y[M, N] = x[M, K] · W[N, K]ᵀ for those blocks'
// outputs.
template <typename Tiles, typename W>
void packed_rows_with(const float* x, const W* p, const float* scale, float* y, int64_t M, int64_t N, int64_t K,
                      int64_t b0, int64_t b1) {
    const auto block = [&](int64_t b) { return p + b * K * 16; };
    const auto sc = [&](int64_t b) { return scale ? scale + b * 16 : nullptr; };
    int64_t b = b0;
    if (M == 1) {
        // One row: four blocks per tile.
        for (; b + 4 <= b1; b += 4) Tiles::template tile<W, 1, 4>(x, block(b), y + b * 16, N, K, nullptr, sc(b));
        for (; b < b1; ++b) Tiles::template tile<W, 1, 1>(x, block(b), y + b * 16, N, K, nullptr, sc(b));
        return;
    }
    if (M == 2) {
        constexpr int nb = Tiles::kTwoRowBlocks;
        for (; b + nb <= b1; b += nb) Tiles::template tile<W, 2, nb>(x, block(b), y + b * 16, N, K, nullptr, sc(b));
        for (; b < b1; ++b) Tiles::template tile<W, 2, 1>(x, block(b), y + b * 16, N, K, nullptr, sc(b));
        return;
    }
    // Groups of up to 6 rows (12 accumulators in either family), as even as possible: 8 rows are 4 + 4, not 6 + 2.
    const int64_t groups = (M + 5) / 6;
    for (; b < b1; b += Tiles::kGroupBlocks) {
        const int64_t n = std::min<int64_t>(Tiles::kGroupBlocks, b1 - b);
        const W* next = b + n < b1 ? block(b + n) : nullptr;
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t m0 = M * g / groups, m1 = M * (g + 1) / groups;
            const float* xm = x + m0 * K;
            float* ym = y + m0 * N + b * 16;
            const W* nx = g == 0 ? next : nullptr;
            switch (m1 - m0) {
                case 6: group_tile<Tiles, W, 6>(n, xm, block(b), ym, N, K, nx, sc(b)); break;
                case 5: group_tile<Tiles, W, 5>(n, xm, block(b), ym, N, K, nx, sc(b)); break;
                case 4: group_tile<Tiles, W, 4>(n, xm, block(b), ym, N, K, nx, sc(b)); break;
                case 3: group_tile<Tiles, W, 3>(n, xm, block(b), ym, N, K, nx, sc(b)); break;
                case 2: group_tile<Tiles, W, 2>(n, xm, block(b), ym, N, K, nx, sc(b)); break;
                default: group_tile<Tiles, W, 1>(n, xm, block(b), ym, N, K, nx, sc(b));
            }
        }
    }
}

// Rows [0, M) of x against blocks [b0, b1), in 512-bit registers where the CPU has them (the same bits either way).
template <typename W>
void packed_rows(const float* x, const W* p, const float* scale, float* y, int64_t M, int64_t N, int64_t K, int64_t b0,
                 int64_t b1) {
    if (io::cpu_avx512_enabled())
        packed_rows_with<Avx512Tiles>(x, p, scale, y, M, N, K, b0, b1);
    else
        packed_rows_with<Avx2Tiles>(x, p, scale, y, M, N, K, b0, b1);
}

#endif

// y = x · Wᵀ (+ bias) for a weight of N outputs and width K: x's rows in passes of at most
// kSmallLinearRowsPerPass, `pass(x rows, y rows, count)` computing each (fp32 in and out); y in x's dtype.
template <typename Pass>
at::Tensor by_passes(const char* what, const at::Tensor& x, int64_t N, int64_t K, const at::Tensor& bias,
                     const Pass& pass) {
    if (x.size(-1) != K) throw Error(fmt::format("{}: input width {} for a weight of width {}", what, x.size(-1), K));
    const int64_t M = x.numel() / K;
    auto xf = x.reshape({M, K}).to(at::kFloat).contiguous();
    auto y = at::empty({M, N}, xf.options());
    const float* xp = xf.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for (int64_t m0 = 0; m0 < M; m0 += kSmallLinearRowsPerPass)
        pass(xp + m0 * K, yp + m0 * N, std::min(kSmallLinearRowsPerPass, M - m0));
    if (bias.defined()) y.add_(bias.to(at::kFloat));
    auto sizes = x.sizes().vec();
    sizes.back() = N;
    return y.view(sizes).to(x.scalar_type());
}

}  // namespace

bool small_linear_supported() { return io::cpu_kernels_enabled(); }

at::Tensor small_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
#ifdef ALEXANDRIA_X86
    if (!small_linear_supported()) throw Error("small_linear: this CPU lacks AVX2/FMA");
    const int64_t K = weight.size(1), N = weight.size(0);
    if (!weight.is_contiguous() || (weight.scalar_type() != at::kFloat && weight.scalar_type() != at::kBFloat16))
        throw Error("small_linear: the weight must be a contiguous fp32 or bf16 matrix");
    const bool bf16 = weight.scalar_type() == at::kBFloat16;
    const void* wp = weight.data_ptr();
    // Chunks of output features (multiples of 4); every output is computed by one thread, in one order.
    const int64_t groups = (N + 3) / 4;
    const int chunks = N * K < 65536 ? 1 : static_cast<int>(std::min<int64_t>(groups, 16));
    // The chunks run on libtorch's own OpenMP threads (below): a second pool of threads beside libtorch's would
    // fight them for the cores: after each of libtorch's parallel regions its OpenMP workers spin for a while, and
    // on two cores a separate pool thread then got half a core (30% of a decode's CPU time was that spinning).
    return by_passes("small_linear", x, N, K, bias, [&](const float* xm, float* ym, int64_t rows) {
        on_torch_threads(chunks, [&](int64_t c0, int64_t c1) {
            for (int64_t c = c0; c < c1; ++c) {
                const int64_t n0 = std::min(N, groups * c / chunks * 4), n1 = std::min(N, groups * (c + 1) / chunks * 4);
                if (n0 >= n1) continue;
                if (bf16)
                    rows_kernel(xm, static_cast<const uint16_t*>(wp), ym, rows, N, K, n0, n1);
                else
                    rows_kernel(xm, static_cast<const float*>(wp), ym, rows, N, K, n0, n1);
            }
        });
    });
#else
    (void)x;
    (void)weight;
    (void)bias;
    throw Error("small_linear: x86 only");
#endif
}

namespace {
// Storage for the inference layout: 2 MB-aligned anonymous memory that the kernel is asked to back with huge pages.
// Decoding streams every weight once per step; in 4 KB pages each 4 KB of weights also costs a TLB miss and a
// page walk (the 0.6B code predictor's 35 matrices against 8 rows on 2 threads: 15.5 -> 13.0 ms per pass; 1 thread
// 29.3 -> 23.9). Best effort: where the system declines, the same memory is in ordinary pages.
at::Tensor empty_on_huge_pages(const at::Tensor& like) {
#ifdef __linux__
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t bytes = like.nbytes();
    if (bytes < kHuge) return at::empty_like(like);
    const size_t len = (bytes + kHuge - 1) & ~(kHuge - 1), map_len = len + kHuge;
    void* base = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return at::empty_like(like);
    auto* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~uintptr_t(kHuge - 1));
    ::madvise(p, len, MADV_HUGEPAGE);
    return at::from_blob(p, like.sizes(), [base, map_len](void*) { ::munmap(base, map_len); }, like.options());
#else
    return at::empty_like(like);
#endif
}

// Position of weight (n, k) in the inference layout (see load_block_row).
int64_t packed_index(int64_t n, int64_t k, int64_t K, bool bf16) {
    const int64_t b = n / 16, i = n % 16;
    const int64_t slot = bf16 ? (i < 8 ? 2 * i : 2 * (i - 8) + 1) : i;
    return (b * K + k) * 16 + slot;
}

template <typename T>
void permute_weight(const T* from, T* to, int64_t N, int64_t K, bool bf16, bool pack) {
    // bf16: the (n, n + 8) pairs of load_block_row; fp32 and int8: the rows in order.
    on_torch_threads(N / 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
            for (int64_t k = 0; k < K; ++k)
                for (int64_t i = 0; i < 16; ++i) {
                    const int64_t n = b * 16 + i, natural = n * K + k, packed = packed_index(n, k, K, bf16);
                    if (pack)
                        to[packed] = from[natural];
                    else
                        to[natural] = from[packed];
                }
    });
}

at::Tensor permuted(const at::Tensor& w, bool pack) {
    if (w.dim() != 2 || !w.is_contiguous() || !w.device().is_cpu() ||
        (w.scalar_type() != at::kFloat && w.scalar_type() != at::kBFloat16 && w.scalar_type() != at::kChar))
        throw Error("pack_weight: a contiguous fp32, bf16 or int8 CPU matrix is needed");
    const int64_t N = w.size(0), K = w.size(1);
    if (N % 16 != 0) throw Error(fmt::format("pack_weight: {} rows is not a multiple of 16", N));
    auto out = pack ? empty_on_huge_pages(w) : at::empty_like(w);
    if (w.scalar_type() == at::kBFloat16)
        permute_weight(static_cast<const uint16_t*>(w.data_ptr()), static_cast<uint16_t*>(out.data_ptr()), N, K, true,
                       pack);
    else if (w.scalar_type() == at::kChar)
        permute_weight(w.data_ptr<int8_t>(), out.data_ptr<int8_t>(), N, K, false, pack);
    else
        permute_weight(w.data_ptr<float>(), out.data_ptr<float>(), N, K, false, pack);
    return out;
}
}  // namespace

bool packable(const at::Tensor& w) {
    return small_linear_supported() && w.dim() == 2 && w.device().is_cpu() && w.is_contiguous() && w.size(0) % 16 == 0 &&
           (w.scalar_type() == at::kFloat || w.scalar_type() == at::kBFloat16);
}

at::Tensor pack_weight(const at::Tensor& w) { return permuted(w, true); }
at::Tensor unpack_weight(const at::Tensor& packed) { return permuted(packed, false); }

Int8Weight quantize_weight(const at::Tensor& weight) {
    if (!packable(weight)) throw Error("quantize_weight: a contiguous fp32 or bf16 CPU matrix of 16k rows is needed");
    const int64_t N = weight.size(0);
    auto w = weight.to(at::kFloat);
    // Symmetric, per output row: scale = max |w| / 127 (1 for an all-zero row), q = round(w / scale).
    auto scale = std::get<0>(w.abs().max(1, /*keepdim=*/true)).div_(127.0);
    scale.masked_fill_(scale == 0, 1.0);
    auto q = w.div(scale).round_().clamp_(-127, 127).to(at::kChar).contiguous();
    return {permuted(q, true), scale.view({N}).contiguous()};
}

namespace {
at::Tensor run_packed(const at::Tensor& x, const at::Tensor& packed, const float* scale, const at::Tensor& bias) {
#ifdef ALEXANDRIA_X86
    const int64_t N = packed.size(0), K = packed.size(1);
    const auto dtype = packed.scalar_type();
    const void* wp = packed.data_ptr();
    // Chunks of blocks; every output is computed by one thread, in one order.
    const int64_t blocks = N / 16;
    const int64_t chunks = N * K < 65536 ? 1 : std::min<int64_t>(blocks, 16);
    return by_passes("packed_linear", x, N, K, bias, [&](const float* xm, float* ym, int64_t rows) {
        on_torch_threads(chunks, [&](int64_t c0, int64_t c1) {
            const int64_t b0 = blocks * c0 / chunks, b1 = blocks * c1 / chunks;
            if (b0 >= b1) return;
            if (dtype == at::kBFloat16)
                packed_rows(xm, static_cast<const uint16_t*>(wp), nullptr, ym, rows, N, K, b0, b1);
            else if (dtype == at::kChar)
                packed_rows(xm, static_cast<const int8_t*>(wp), scale, ym, rows, N, K, b0, b1);
            else
                packed_rows(xm, static_cast<const float*>(wp), nullptr, ym, rows, N, K, b0, b1);
        });
    });
#else
    (void)x;
    (void)packed;
    (void)scale;
    (void)bias;
    throw Error("packed_linear: x86 only");
#endif
}
}  // namespace

at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& bias) {
    if (!packable(packed)) throw Error("packed_linear: not a packed weight");
    return run_packed(x, packed, nullptr, bias);
}

at::Tensor int8_linear(const at::Tensor& x, const Int8Weight& w, const at::Tensor& bias) {
    if (!small_linear_supported() || w.q.scalar_type() != at::kChar || w.q.dim() != 2 || w.q.size(0) % 16 != 0 ||
        !w.scale.defined() || w.scale.numel() != w.q.size(0) || w.scale.scalar_type() != at::kFloat)
        throw Error("int8_linear: not a quantized weight");
    return run_packed(x, w.q, w.scale.data_ptr<float>(), bias);
}

}  // namespace alexandria::model
