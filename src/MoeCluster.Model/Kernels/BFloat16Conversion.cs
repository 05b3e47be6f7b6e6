using System.Runtime.Intrinsics;

namespace MoeCluster.Model.Kernels;

/// <summary>float32 ↔ bfloat16 over whole buffers, bit for bit libtorch's <c>to(bfloat16)</c> / <c>to(float32)</c> for
/// every non-NaN value: round to nearest even (overflowing to infinity as it does), and exact widening. A NaN becomes a
/// quiet NaN (0x7FC0; libtorch's vector path writes 0xFFFF, also a NaN). For the wire, where a message's rows
/// are converted once on the way out and once on the way in: one pass over the bytes instead of two TorchSharp
/// conversions, a contiguous copy and a copy into the frame.</summary>
public static unsafe class BFloat16Conversion
{
    /// <summary>dst[i] = round-to-nearest-even(src[i]) as bfloat16 bits.</summary>
    public static void Narrow(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException($"{dst.Length} bfloat16 slots for {src.Length} floats");
        int n = src.Length, i = 0;
        fixed (float* s = src)
        fixed (ushort* d = dst)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                var quietNaN = Vector512.Create(0x7FC00000u).AsSingle();
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(s + i);
                    // The kernels' rounding handles finite lanes only; NaN lanes get the quiet NaN.
                    var rounded = Vector512.ConditionalSelect(Vector512.Equals(v, v), BFloat16Bits.Round(v), quietNaN);
                    BFloat16Bits.Store(rounded, d + i);
                }
            }
            for (; i < n; i++) d[i] = BFloat16Bits.Round(s[i]);
        }
    }

    /// <summary>dst[i] = src[i] widened to float32 (exact).</summary>
    public static void Widen(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException($"{dst.Length} float slots for {src.Length} bfloat16 values");
        int n = src.Length, i = 0;
        fixed (ushort* s = src)
        fixed (float* d = dst)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i + 16 <= n; i += 16) BFloat16Bits.Load(s + i).Store(d + i);
            for (; i < n; i++) d[i] = BFloat16Bits.Widen(s[i]);
        }
    }
}
