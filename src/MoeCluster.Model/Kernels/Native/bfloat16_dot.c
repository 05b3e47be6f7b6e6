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
#define DOT4(c0, c1, c2, c3, b) \
    c0 = _mm512_dpbf16_ps(c0, a0, b); c1 = _mm512_dpbf16_ps(c1, a1, b); \
    c2 = _mm512_dpbf16_ps(c2, a2, b); c3 = _mm512_dpbf16_ps(c3, a3, b);
#define STORE4(o, c0, c1, c2, c3) \
    (o)[0] = _mm512_reduce_add_ps(c0); (o)[1] = _mm512_reduce_add_ps(c1); \
    (o)[2] = _mm512_reduce_add_ps(c2); (o)[3] = _mm512_reduce_add_ps(c3);

TARGET void moecluster_bf16_dot4(const uint16_t* x, int M, int K,
                                 const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3,
                                 float* r, const char* next, long next_bytes)
{
    long per_tile = next_bytes / ((M + 3) / 4) + 64, fetched = 0;
    int m = 0;
    for (; m + 4 <= M; m += 4)
    {
        long end = fetched + per_tile < next_bytes ? fetched + per_tile : next_bytes;
        for (; fetched < end; fetched += 64) _mm_prefetch(next + fetched, _MM_HINT_T0);
        const uint16_t *x0 = x + (long)m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00,
               c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int k = 0; k < K; k += 32)
        {
            __m512bh a0 = LOAD(w0 + k), a1 = LOAD(w1 + k), a2 = LOAD(w2 + k), a3 = LOAD(w3 + k);
            __m512bh b = LOAD(x0 + k);
            DOT4(c00, c01, c02, c03, b)
            b = LOAD(x1 + k);
            DOT4(c10, c11, c12, c13, b)
            b = LOAD(x2 + k);
            DOT4(c20, c21, c22, c23, b)
            b = LOAD(x3 + k);
            DOT4(c30, c31, c32, c33, b)
        }
        float* o = r + m * 4;
        STORE4(o, c00, c01, c02, c03) STORE4(o + 4, c10, c11, c12, c13)
        STORE4(o + 8, c20, c21, c22, c23) STORE4(o + 12, c30, c31, c32, c33)
    }
    for (; m + 2 <= M; m += 2)
    {
        for (; fetched < next_bytes; fetched += 64) _mm_prefetch(next + fetched, _MM_HINT_T0);
        const uint16_t *x0 = x + (long)m * K, *x1 = x0 + K;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        for (int k = 0; k < K; k += 32)
        {
            __m512bh a0 = LOAD(w0 + k), a1 = LOAD(w1 + k), a2 = LOAD(w2 + k), a3 = LOAD(w3 + k);
            __m512bh b = LOAD(x0 + k);
            DOT4(c00, c01, c02, c03, b)
            b = LOAD(x1 + k);
            DOT4(c10, c11, c12, c13, b)
        }
        float* o = r + m * 4;
        STORE4(o, c00, c01, c02, c03) STORE4(o + 4, c10, c11, c12, c13)
    }
    for (; m < M; m++)
    {
        for (; fetched < next_bytes; fetched += 64) _mm_prefetch(next + fetched, _MM_HINT_T0);
        const uint16_t* x0 = x + (long)m * K;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
        for (int k = 0; k < K; k += 32)
        {
            __m512bh a0 = LOAD(w0 + k), a1 = LOAD(w1 + k), a2 = LOAD(w2 + k), a3 = LOAD(w3 + k);
            __m512bh b = LOAD(x0 + k);
            DOT4(c00, c01, c02, c03, b)
        }
        STORE4(r + m * 4, c00, c01, c02, c03)
    }
}
