using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MoeCluster.Model.Kernels;

/// <summary>bfloat16 as the upper 16 bits of a float32.</summary>
static class BFloat16Bits
{
    /// <summary>Round to nearest even, as libtorch's float → bfloat16 conversion does (NaN stays a quiet NaN).</summary>
    public static ushort Round(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        if (float.IsNaN(v)) return 0x7FC0;
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    public static float Widen(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    /// <summary>v rounded to the nearest bfloat16 and widened back: what a bfloat16 tensor holds after libtorch
    /// rounds an intermediate result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Rounded(float v) => Widen(Round(v));

    /// <summary>Sixteen lanes rounded as <see cref="Round(float)"/> and widened back, for finite inputs (no NaN
    /// handling: the kernels' scores, probabilities and norms of finite inputs are finite).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Round(Vector512<float> v)
    {
        var bits = v.AsUInt32();
        bits += Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One);
        return (bits & Vector512.Create(0xFFFF0000u)).AsSingle();
    }

    /// <summary>Sixteen bfloat16 values from p, widened exactly to float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Load(ushort* p) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()), 16).AsSingle();

    /// <summary>Sixteen lanes already rounded to bfloat16 (<see cref="Round(Vector512{float})"/>) stored as bfloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(Vector512<float> rounded, ushort* p) =>
        Vector512.Narrow(rounded.AsUInt32() >> 16, Vector512<uint>.Zero).GetLower().Store(p);
}

/// <summary>Elements of a float32 or bfloat16 buffer read and written as float32, for kernels that take either dtype
/// (bfloat16 written rounded to nearest even).</summary>
static unsafe class Elements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(byte* p, int i, bool bf16) => bf16 ? BFloat16Bits.Widen(((ushort*)p)[i]) : ((float*)p)[i];

    /// <summary>Elements [i, i+16) as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(byte* p, int i, bool bf16) => bf16 ? BFloat16Bits.Load((ushort*)p + i) : Vector512.Load((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(byte* p, long i, float value, bool bf16)
    {
        if (bf16) ((ushort*)p)[i] = BFloat16Bits.Round(value);
        else ((float*)p)[i] = value;
    }
}
