using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

public sealed class SafetensorsRoundTripSpec : IDisposable
{
    readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    static Tensor Sample(params long[] shape)
    {
        var generator = new Generator(1234);
        return torch.randn(shape, generator: generator) * 3;
    }

    string WriteOne(string name, Tensor tensor, ScalarType? storeAs = null)
    {
        var path = dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [new(name, tensor)], storeAs);
        return path;
    }

    [Fact]
    public void F32_round_trip_is_bit_exact()
    {
        using var original = Sample(3, 5);
        using var file = SafetensorsFile.Open(WriteOne("w", original));
        using var read = file.Read("w", ScalarType.Float32);

        Assert.Equal("F32", file.Tensors["w"].DType);
        Assert.Equal(new long[] { 3, 5 }, read.shape);
        Assert.True(TensorAssert.Same(read, original));
    }

    [Fact]
    public void F16_on_disk_reads_back_as_f16_exactly_and_as_f32_within_half_precision()
    {
        using var original = Sample(4, 6);
        using var file = SafetensorsFile.Open(WriteOne("w", original, ScalarType.Float16));
        using var asHalf = file.Read("w", ScalarType.Float16);
        using var asFloat = file.Read("w", ScalarType.Float32);
        using var expectedHalf = original.to(ScalarType.Float16);

        Assert.Equal("F16", file.Tensors["w"].DType);
        Assert.Equal(ScalarType.Float16, asHalf.dtype);
        Assert.True(TensorAssert.Same(asHalf, expectedHalf));
        Assert.Equal(ScalarType.Float32, asFloat.dtype);
        Assert.True(asFloat.allclose(original, rtol: 1e-3, atol: 1e-4));
    }

    [Fact]
    public void BF16_on_disk_reads_as_f32_with_bfloat16_precision()
    {
        using var original = Sample(8, 8);
        using var file = SafetensorsFile.Open(WriteOne("w", original, ScalarType.BFloat16));
        using var asFloat = file.Read("w", ScalarType.Float32);
        using var roundedByTorch = original.to(ScalarType.BFloat16).to(ScalarType.Float32);

        Assert.Equal("BF16", file.Tensors["w"].DType);
        Assert.Equal(64 * 2, file.Tensors["w"].ByteLength);
        Assert.True(TensorAssert.Same(asFloat, roundedByTorch));
        // bfloat16 keeps 8 significant bits: relative error at most 2^-8.
        Assert.True(asFloat.allclose(original, rtol: 1.0 / 256, atol: 1e-30));
        Assert.False(TensorAssert.Same(asFloat, original)); // the data really went through bf16
    }

    [Fact]
    public void F32_on_disk_converts_to_bf16_when_asked()
    {
        using var original = Sample(5, 3);
        using var file = SafetensorsFile.Open(WriteOne("w", original));
        using var asBf16 = file.Read("w", ScalarType.BFloat16);
        using var expected = original.to(ScalarType.BFloat16);

        Assert.Equal(ScalarType.BFloat16, asBf16.dtype);
        Assert.True(TensorAssert.Same(asBf16, expected));
    }

    [Fact]
    public void F32_on_disk_converts_to_f16_when_asked()
    {
        using var original = Sample(7);
        using var file = SafetensorsFile.Open(WriteOne("w", original));
        using var asHalf = file.Read("w", ScalarType.Float16, torch.CPU);
        using var expected = original.to(ScalarType.Float16);

        Assert.True(TensorAssert.Same(asHalf, expected));
    }

    [Theory]
    [InlineData(ScalarType.Int64, "I64")]
    [InlineData(ScalarType.Int32, "I32")]
    [InlineData(ScalarType.Int16, "I16")]
    [InlineData(ScalarType.Int8, "I8")]
    [InlineData(ScalarType.Byte, "U8")]
    [InlineData(ScalarType.Bool, "BOOL")]
    [InlineData(ScalarType.Float64, "F64")]
    public void Integer_bool_and_f64_tensors_round_trip_in_their_own_type(ScalarType type, string onDisk)
    {
        using var source = torch.tensor(new long[] { 0, 1, 7, 1, 0, 100 }).reshape(2, 3);
        using var original = source.to(type);
        using var file = SafetensorsFile.Open(WriteOne("buffer", original));
        using var read = file.Read("buffer", type);

        Assert.Equal(onDisk, file.Tensors["buffer"].DType);
        Assert.Equal(type, read.dtype);
        Assert.True(TensorAssert.Same(read, original));
    }

    [Fact]
    public void StoreAs_converts_floating_tensors_only_and_keeps_integer_buffers()
    {
        var path = dir.File("mixed.safetensors");
        using var weight = Sample(2, 2);
        using var ids = torch.arange(5, dtype: ScalarType.Int64);
        SafetensorsWriter.Write(path, [new("weight", weight), new("position_ids", ids)], ScalarType.BFloat16);

        using var file = SafetensorsFile.Open(path);
        using var readIds = file.Read("position_ids", ScalarType.Int64);

        Assert.Equal("BF16", file.Tensors["weight"].DType);
        Assert.Equal("I64", file.Tensors["position_ids"].DType);
        Assert.True(TensorAssert.Same(readIds, ids));
    }

    [Fact]
    public void Scalars_and_empty_tensors_round_trip()
    {
        var path = dir.File("edge.safetensors");
        using var scalar = torch.tensor(2.5f);
        using var empty = torch.zeros(0, 4);
        SafetensorsWriter.Write(path, [new("scalar", scalar), new("empty", empty)]);

        using var file = SafetensorsFile.Open(path);
        using var readScalar = file.Read("scalar", ScalarType.Float32);
        using var readEmpty = file.Read("empty", ScalarType.Float32);

        Assert.Empty(file.Tensors["scalar"].Shape);
        Assert.Equal(2.5f, readScalar.item<float>());
        Assert.Equal(new long[] { 0, 4 }, readEmpty.shape);
        Assert.Equal(0, file.Tensors["empty"].ByteLength);
    }

    [Fact]
    public void Non_contiguous_input_is_written_in_logical_order()
    {
        using var original = Sample(3, 4);
        using var transposed = original.t();
        using var file = SafetensorsFile.Open(WriteOne("w", transposed));
        using var read = file.Read("w", ScalarType.Float32);

        Assert.Equal(new long[] { 4, 3 }, read.shape);
        Assert.True(TensorAssert.Same(read, transposed));
    }

    [Fact]
    public void Metadata_round_trips()
    {
        var path = dir.File("meta.safetensors");
        using var t = torch.ones(2);
        SafetensorsWriter.Write(path, [new("t", t)], metadata: new Dictionary<string, string> { ["format"] = "pt", ["step"] = "1200" });

        using var file = SafetensorsFile.Open(path);

        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("1200", file.Metadata["step"]);
        Assert.DoesNotContain("__metadata__", file.Tensors.Keys);
    }

    [Fact]
    public void Names_with_non_ascii_and_json_special_characters_round_trip()
    {
        var path = dir.File("names.safetensors");
        string name = "layers.0.\"quoted\"\\ünï\u00e9\U0001F600";
        using var t = torch.arange(3, dtype: ScalarType.Float32);
        SafetensorsWriter.Write(path, [new(name, t)]);

        using var file = SafetensorsFile.Open(path);
        using var read = file.Read(name, ScalarType.Float32);

        Assert.True(TensorAssert.Same(read, t));
    }

    [Fact]
    public void Reading_returns_an_owned_tensor_that_outlives_the_callers_dispose_scope()
    {
        using var original = Sample(2, 3);
        using var file = SafetensorsFile.Open(WriteOne("w", original));
        Tensor kept;
        using (var scope = torch.NewDisposeScope())
        {
            kept = file.Read("w", ScalarType.BFloat16).MoveToOuterDisposeScope();
        }
        using (kept)
        {
            using var expected = original.to(ScalarType.BFloat16);
            Assert.True(TensorAssert.Same(kept, expected));
        }
    }
}
