using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MoeCluster.Model.Kernels;

/// <summary>The register tiles of <see cref="SmallMatMul"/>: 4 weight rows against 1, 2 or 4 activation rows, every
/// weight vector loaded once and used by each activation row, accumulators kept in registers (at 4×4: 16 accumulators,
/// 8 weight and 2 activation vectors of the 32 AVX-512 registers). Activations are in the chunked layout of
/// <see cref="IWeightRows"/>, K a multiple of 32. r receives dot products as r[m·4 + i] for activation row m, weight row i.</summary>
static unsafe class SmallMatMulTiles
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows4x1<TW>(float* x, byte* w0, byte* w1, byte* w2, byte* w3, int K, float* r) where TW : IWeightRows
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        for (int c = 0; c < K; c += 32)
        {
            var xa = Vector512.Load(x + c); var xb = Vector512.Load(x + c + 16);
            TW.Load(w0, c, out var a0, out var b0); TW.Load(w1, c, out var a1, out var b1);
            TW.Load(w2, c, out var a2, out var b2); TW.Load(w3, c, out var a3, out var b3);
            c0 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c0));
            c1 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c1));
            c2 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c2));
            c3 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c3));
        }
        r[0] = Vector512.Sum(c0); r[1] = Vector512.Sum(c1); r[2] = Vector512.Sum(c2); r[3] = Vector512.Sum(c3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows4x2<TW>(float* x, byte* w0, byte* w1, byte* w2, byte* w3, int K, float* r) where TW : IWeightRows
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        float* y = x + K;
        for (int c = 0; c < K; c += 32)
        {
            TW.Load(w0, c, out var a0, out var b0); TW.Load(w1, c, out var a1, out var b1);
            TW.Load(w2, c, out var a2, out var b2); TW.Load(w3, c, out var a3, out var b3);
            var xa = Vector512.Load(x + c); var xb = Vector512.Load(x + c + 16);
            c00 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c00));
            c01 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c01));
            c02 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c02));
            c03 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c03));
            xa = Vector512.Load(y + c); xb = Vector512.Load(y + c + 16);
            c10 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c10));
            c11 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c11));
            c12 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c12));
            c13 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c13));
        }
        r[0] = Vector512.Sum(c00); r[1] = Vector512.Sum(c01); r[2] = Vector512.Sum(c02); r[3] = Vector512.Sum(c03);
        r[4] = Vector512.Sum(c10); r[5] = Vector512.Sum(c11); r[6] = Vector512.Sum(c12); r[7] = Vector512.Sum(c13);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows4x4<TW>(float* x, byte* w0, byte* w1, byte* w2, byte* w3, int K, float* r) where TW : IWeightRows
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* x1 = x + K, x2 = x + 2 * K, x3 = x + 3 * K;
        for (int c = 0; c < K; c += 32)
        {
            TW.Load(w0, c, out var a0, out var b0); TW.Load(w1, c, out var a1, out var b1);
            TW.Load(w2, c, out var a2, out var b2); TW.Load(w3, c, out var a3, out var b3);
            var xa = Vector512.Load(x + c); var xb = Vector512.Load(x + c + 16);
            c00 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c00));
            c01 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c01));
            c02 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c02));
            c03 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c03));
            xa = Vector512.Load(x1 + c); xb = Vector512.Load(x1 + c + 16);
            c10 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c10));
            c11 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c11));
            c12 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c12));
            c13 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c13));
            xa = Vector512.Load(x2 + c); xb = Vector512.Load(x2 + c + 16);
            c20 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c20));
            c21 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c21));
            c22 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c22));
            c23 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c23));
            xa = Vector512.Load(x3 + c); xb = Vector512.Load(x3 + c + 16);
            c30 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c30));
            c31 = Vector512.FusedMultiplyAdd(b1, xb, Vector512.FusedMultiplyAdd(a1, xa, c31));
            c32 = Vector512.FusedMultiplyAdd(b2, xb, Vector512.FusedMultiplyAdd(a2, xa, c32));
            c33 = Vector512.FusedMultiplyAdd(b3, xb, Vector512.FusedMultiplyAdd(a3, xa, c33));
        }
        r[0] = Vector512.Sum(c00); r[1] = Vector512.Sum(c01); r[2] = Vector512.Sum(c02); r[3] = Vector512.Sum(c03);
        r[4] = Vector512.Sum(c10); r[5] = Vector512.Sum(c11); r[6] = Vector512.Sum(c12); r[7] = Vector512.Sum(c13);
        r[8] = Vector512.Sum(c20); r[9] = Vector512.Sum(c21); r[10] = Vector512.Sum(c22); r[11] = Vector512.Sum(c23);
        r[12] = Vector512.Sum(c30); r[13] = Vector512.Sum(c31); r[14] = Vector512.Sum(c32); r[15] = Vector512.Sum(c33);
    }

    /// <summary>One weight row against one activation row with exactly the arithmetic of one row of
    /// <see cref="Rows4x1"/> (so a row's result does not depend on the tile it fell into), reading the row front to
    /// back. Called row after row, a one-row call reads the weight as one sequential stream — the 4x1 tile's four
    /// interleaved streams of a few KiB each end before the hardware prefetcher has ramped up, and it does not cross
    /// 4 KiB pages — and asks for the bytes <see cref="StreamAhead"/> ahead (the rows that follow) into L2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Row1<TW>(float* x, byte* w, int K) where TW : IWeightRows
    {
        Vector512<float> c0 = default;
        for (int c = 0; c < K; c += 32)
        {
            byte* next = w + (nint)c * TW.ElementSize + StreamAhead;
            Sse.Prefetch1(next);
            if (TW.ElementSize == 4) Sse.Prefetch1(next + 64);   // a float32 chunk is two cache lines
            var xa = Vector512.Load(x + c); var xb = Vector512.Load(x + c + 16);
            TW.Load(w, c, out var a0, out var b0);
            c0 = Vector512.FusedMultiplyAdd(b0, xb, Vector512.FusedMultiplyAdd(a0, xa, c0));
        }
        return Vector512.Sum(c0);
    }

    /// <summary>Prefetch distance of <see cref="Row1"/>: on bench-small's weights (a batch-1 step replayed as in
    /// `bench … decode-calls`), 2, 4 and 8 KiB ahead, into L1 or L2, were alike and ahead of none.</summary>
    const int StreamAhead = 4096;

    /// <summary>The same dot products without vectors (hardware without AVX-512, and the reference the vector tiles are
    /// tested against): activations in plain order, weights widened one by one.</summary>
    public static void Scalar(float* x, int M, byte* w, WeightKind kind, int K, float* r)
    {
        for (int m = 0; m < M; m++)
        {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += x[m * K + k] * kind switch
                {
                    WeightKind.BFloat16 => BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[k] << 16),
                    WeightKind.Int8 => ((sbyte*)w)[k],
                    _ => ((float*)w)[k],
                };
            r[m * 4] = s;
        }
    }
}
