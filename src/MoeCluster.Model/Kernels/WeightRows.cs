using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MoeCluster.Model.Kernels;

/// <summary>How the small-batch kernel reads 32 weights of a row as two float vectors (a, b), and how the activations
/// are laid out to pair with them. Each 32-weight chunk of the activations is stored as its "a" half then its "b" half.</summary>
interface IWeightRows
{
    /// <summary>Bytes per weight.</summary>
    static abstract int ElementSize { get; }

    /// <summary>Weights [c, c+32) of the row at <paramref name="row"/>.</summary>
    static abstract unsafe void Load(byte* row, int c, out Vector512<float> a, out Vector512<float> b);

    /// <summary>Where activation k of a chunk goes in the chunk's (a | b) layout.</summary>
    static abstract int Slot(int k);
}

/// <summary>float32 weights: a = weights c..c+15, b = c+16..c+31 (the activations keep their order).</summary>
readonly struct Float32Rows : IWeightRows
{
    public static int ElementSize => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load(byte* row, int c, out Vector512<float> a, out Vector512<float> b)
    {
        var p = (float*)row + c;
        a = Vector512.Load(p);
        b = Vector512.Load(p + 16);
    }

    public static int Slot(int k) => k;
}

/// <summary>bfloat16 weights, widened exactly to float32 in two instructions per 32 weights: a bfloat16 is the upper
/// half of a float32, so shifting a 32-bit lane left by 16 gives the even weight and masking its low half the odd one.
/// a = the even weights c, c+2, …, b = the odd ones; the activations are stored even-then-odd to match.</summary>
readonly struct BFloat16Rows : IWeightRows
{
    public static int ElementSize => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load(byte* row, int c, out Vector512<float> a, out Vector512<float> b)
    {
        var v = Vector512.Load((uint*)((ushort*)row + c));
        a = Vector512.ShiftLeft(v, 16).AsSingle();
        b = (v & Vector512.Create(0xFFFF0000u)).AsSingle();
    }

    public static int Slot(int k) => (k & 1) == 0 ? k / 2 : 16 + k / 2;
}

/// <summary>int8 weights (the scale is applied to the finished dot product): 32 bytes sign-extended to two vectors of
/// 32-bit integers and converted exactly to float32; a = weights c..c+15, b = c+16..c+31 as for float32.</summary>
readonly struct Int8Rows : IWeightRows
{
    public static int ElementSize => 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load(byte* row, int c, out Vector512<float> a, out Vector512<float> b)
    {
        var lo = Vector128.Load((sbyte*)row + c);
        var hi = Vector128.Load((sbyte*)row + c + 16);
        a = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(lo));
        b = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(hi));
    }

    public static int Slot(int k) => k;
}
