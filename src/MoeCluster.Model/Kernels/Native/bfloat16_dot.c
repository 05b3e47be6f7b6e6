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

// mr activation rows against the four weight rows: 4·mr accumulators in registers. Inlined with a constant mr, so the
// loops over m and i unroll and c stays in registers.
static inline __attribute__((always_inline)) TARGET void tile(int mr, const uint16_t* x, int K,
    const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, float* r)
{
    __m512 c[4][4];
    for (int m = 0; m < mr; m++)
        for (int i = 0; i < 4; i++) c[m][i] = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 32)
    {
        __m512bh a[4] = { LOAD(w0 + k), LOAD(w1 + k), LOAD(w2 + k), LOAD(w3 + k) };
        for (int m = 0; m < mr; m++)
        {
            __m512bh b = LOAD(x + (long)m * K + k);
            for (int i = 0; i < 4; i++) c[m][i] = _mm512_dpbf16_ps(c[m][i], a[i], b);
        }
    }
    for (int m = 0; m < mr; m++)
        for (int i = 0; i < 4; i++) r[m * 4 + i] = _mm512_reduce_add_ps(c[m][i]);
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
