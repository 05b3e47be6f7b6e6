// The bfloat16 dot products of SmallMatMul with the AVX512-BF16 instruction vdpbf16ps, which .NET 10 does not expose:
// one instruction multiplies 32 bfloat16 pairs exactly and adds them into 16 float32 sums, where the managed tile
// widens both halves of a weight vector to float32 and runs two FMAs. Built by MoeCluster.Model.csproj with the
// system C compiler; the managed kernel is used where the library or the instruction is missing.
//
// Contract (the managed tile's, SmallMatMulTiles.Rows4xM): x holds M activation rows of K bfloat16 values in their
// plain order, w0..w3 four weight rows of K bfloat16 values (a short last block repeats a row), K a multiple of 32;
// r[m*4 + i] = x[m] . w_i accumulated in float32. `next` and `next_bytes` name the next block's weight rows, which
// are prefetched a share before each 4-row tile, so they arrive while this block computes from cache.
#include <immintrin.h>
#include <stdint.h>

int moecluster_bf16_dot_supported(void) { return __builtin_cpu_supports("avx512bf16") ? 1 : 0; }

#define TARGET __attribute__((target("avx512f,avx512bf16")))
#define LOAD(p) ((__m512bh)_mm512_loadu_si512((const void*)(p)))

// The 16 sums of v[0..15] into one vector, out[j] = sum of v[j]'s lanes, by a transposing tree (45 instructions where 16
// separate reductions take about 128). Each output's adds depend only on its own vector and follow the same tree for
// every j, so a row's sums do not depend on which tile or position it had.
static inline __attribute__((always_inline)) TARGET __m512 reduce16(const __m512 v[16])
{
    __m512 s[8], t[4];
    for (int j = 0; j < 8; j++)        // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
        s[j] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]), _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]));
    for (int j = 0; j < 4; j++)        // per 128-bit lane: the four vectors' partial sums, in order
        t[j] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// mr activation rows against the four weight rows: 4·mr accumulators in registers (all 16 enter the reduction).
// Inlined with a constant mr, so the loops over m and i unroll and c stays in registers.
static inline __attribute__((always_inline)) TARGET void tile(int mr, const uint16_t* x, int K,
    const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, float* r)
{
    __m512 c[16];                      // c[m*4 + i]: activation row m against weight row i
    for (int j = 0; j < 16; j++) c[j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 32)
    {
        __m512bh a[4] = { LOAD(w0 + k), LOAD(w1 + k), LOAD(w2 + k), LOAD(w3 + k) };
        for (int m = 0; m < mr; m++)
        {
            __m512bh b = LOAD(x + (long)m * K + k);
            for (int i = 0; i < 4; i++) c[m * 4 + i] = _mm512_dpbf16_ps(c[m * 4 + i], a[i], b);
        }
    }
    // Rows past mr stay zero and their sums are not stored.
    _mm512_mask_storeu_ps(r, (__mmask16)((1u << (4 * mr)) - 1), reduce16(c));
}

TARGET void moecluster_bf16_dot4(const uint16_t* x, int M, int K,
                                 const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3,
                                 float* r, const char* next, long next_bytes)
{
    long per_tile = next_bytes / ((M + 3) / 4) + 64, fetched = 0;
    for (int m = 0; m < M;)
    {
        long end = fetched + per_tile < next_bytes ? fetched + per_tile : next_bytes;
        for (; fetched < end; fetched += 64) _mm_prefetch(next + fetched, _MM_HINT_T0);
        const uint16_t* xm = x + (long)m * K;
        if (M - m >= 4) { tile(4, xm, K, w0, w1, w2, w3, r + m * 4); m += 4; }
        else if (M - m >= 2) { tile(2, xm, K, w0, w1, w2, w3, r + m * 4); m += 2; }
        else { tile(1, xm, K, w0, w1, w2, w3, r + m * 4); m += 1; }
    }
}
