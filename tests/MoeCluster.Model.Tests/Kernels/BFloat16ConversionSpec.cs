using System.Runtime.InteropServices;
using MoeCluster.Model.Kernels;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Kernels;

/// <summary>The wire's float32 ↔ bfloat16 conversion against libtorch's: the same bits for every non-NaN value,
/// including ties (rounded to even), values that round up to infinity, subnormals and signed zeros; NaN stays NaN.</summary>
public sealed class BFloat16ConversionSpec
{
    static float[] Values()
    {
        var random = new Random(20261204);
        var values = new List<float> { 0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, float.Epsilon, -float.Epsilon, 1e-40f };
        for (int i = 0; i < 4000; i++) values.Add((float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-30, 30)));
        // Exact ties between two bfloat16 values (low half 0x8000), with even and odd upper halves.
        for (uint upper = 0x3F80; upper < 0x3F90; upper++) values.Add(BitConverter.UInt32BitsToSingle(upper << 16 | 0x8000));
        for (int i = 0; i < 64; i++) values.Add(BitConverter.UInt32BitsToSingle(((uint)random.Next() & 0xFFFFu) | 0x7F7F0000u));   // near the largest finite
        return values.ToArray();   // 4,000+ values: the vector body and a scalar tail both run
    }

    [Fact]
    public void Narrowing_gives_libtorchs_bits_for_every_non_NaN_value()
    {
        var values = Values();
        using var reference = tensor(values).to(ScalarType.BFloat16);
        var expected = MemoryMarshal.Cast<byte, ushort>(reference.bytes).ToArray();
        var actual = new ushort[values.Length];
        BFloat16Conversion.Narrow(values, actual);
        for (int i = 0; i < values.Length; i++)
            Assert.True(expected[i] == actual[i], $"{values[i]:R} (0x{BitConverter.SingleToUInt32Bits(values[i]):X8}): libtorch 0x{expected[i]:X4}, ours 0x{actual[i]:X4}");
    }

    [Fact]
    public void Narrowing_keeps_a_NaN_a_NaN_in_the_vector_body_and_the_tail()
    {
        var values = Enumerable.Repeat(float.NaN, 19).ToArray();
        var actual = new ushort[values.Length];
        BFloat16Conversion.Narrow(values, actual);
        Assert.All(actual, b => Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)b << 16))));
    }

    [Fact]
    public void Widening_gives_libtorchs_float32_exactly()
    {
        using var bf = tensor(Values()).to(ScalarType.BFloat16);
        var bits = MemoryMarshal.Cast<byte, ushort>(bf.bytes).ToArray();
        using var reference = bf.to(ScalarType.Float32);
        var expected = reference.data<float>().ToArray();
        var actual = new float[bits.Length];
        BFloat16Conversion.Widen(bits, actual);
        Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), actual.Select(BitConverter.SingleToUInt32Bits));
    }
}
