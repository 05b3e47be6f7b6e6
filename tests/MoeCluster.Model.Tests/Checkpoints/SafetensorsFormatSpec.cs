using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

/// <summary>Byte-level compatibility with files the reference Python/Rust <c>safetensors</c> library writes and reads.</summary>
public sealed class SafetensorsFormatSpec : IDisposable
{
    readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Writer_output_matches_the_reference_bytes_for_a_small_tensor()
    {
        // safetensors.torch.save_file({"x": torch.tensor([1.0, 2.0])}): a 54-byte header padded to 56 with spaces.
        var expected = RawSafetensors.Build(
            "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ",
            [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]);
        var path = dir.File("x.safetensors");
        using var x = torch.tensor(new[] { 1.0f, 2.0f });

        SafetensorsWriter.Write(path, [new("x", x)]);

        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void Header_lists_metadata_first_then_tensors_by_descending_dtype_then_name_padded_to_8_bytes()
    {
        var path = dir.File("layout.safetensors");
        using var b = torch.ones(2);
        using var a = torch.ones(1);
        using var ids = torch.zeros(1, dtype: ScalarType.Int64);
        SafetensorsWriter.Write(path, [new("b", b), new("a", a), new("ids", ids)], storeAs: ScalarType.Float16,
            metadata: new Dictionary<string, string> { ["format"] = "pt" });

        var (length, header) = RawSafetensors.ReadHeader(path);

        Assert.Equal(0UL, length % 8);
        Assert.Equal(
            "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
            + "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[8,10]},"
            + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[10,14]}}",
            header.TrimEnd(' '));
        Assert.Equal(8 + (long)length + 14, new FileInfo(path).Length);
    }

    [Fact]
    public void Tensors_of_one_dtype_are_laid_out_in_name_order_whatever_the_input_order()
    {
        var path = dir.File("sorted.safetensors");
        var names = new[] { "model.layers.1.w", "lm_head.weight", "model.embed_tokens.weight", "model.layers.0.w" };
        var tensors = names.Select(n => new KeyValuePair<string, Tensor>(n, torch.ones(1))).ToList();
        SafetensorsWriter.Write(path, tensors);

        using var file = SafetensorsFile.Open(path);
        var byOffset = file.Tensors.Values.OrderBy(e => e.Begin).Select(e => e.Name).ToArray();

        Assert.Equal(names.Order(StringComparer.Ordinal).ToArray(), byOffset);
        foreach (var t in tensors) t.Value.Dispose();
    }

    [Fact]
    public void Reader_accepts_hand_built_files_with_unsorted_offsets_and_trailing_padding()
    {
        var path = dir.File("hand.safetensors");
        var header = "{\"second\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                     + "\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ";
        File.WriteAllBytes(path, RawSafetensors.Build(header, RawSafetensors.Floats(1f, 2f, 3f)));

        using var file = SafetensorsFile.Open(path);
        using var first = file.Read("first", ScalarType.Float32);
        using var second = file.Read("second", ScalarType.Float32);

        Assert.Equal(new[] { 1f, 2f }, first.data<float>().ToArray());
        Assert.Equal(3f, second.item<float>());
    }

    [Fact]
    public void Headers_of_fp8_and_unsigned_tensors_parse_and_reading_them_names_the_unsupported_dtype()
    {
        var path = dir.File("fp8.safetensors");
        var header = "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     + "\"u\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                     + "\"s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        File.WriteAllBytes(path, RawSafetensors.Build(header, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x80, 0x3f]));

        using var file = SafetensorsFile.Open(path);
        using var scale = file.Read("s", ScalarType.Float32);
        var error = Assert.Throws<CheckpointException>(() => file.Read("w", ScalarType.Float32));

        Assert.Equal(1f, scale.item<float>());
        Assert.Equal("U16", file.Tensors["u"].DType);
        Assert.Contains("'w'", error.Message);
        Assert.Contains("F8_E4M3", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Rewriting_a_file_replaces_it_and_leaves_no_temporary_files()
    {
        var path = dir.File("model.safetensors");
        using var first = torch.ones(3);
        using var second = torch.full(2, 5f);
        SafetensorsWriter.Write(path, [new("t", first)]);
        SafetensorsWriter.Write(path, [new("t", second)]);

        using var file = SafetensorsFile.Open(path);
        using var read = file.Read("t", ScalarType.Float32);

        Assert.True(TensorAssert.Same(read, second));
        Assert.Equal(new[] { "model.safetensors" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Writer_refuses_duplicate_names_and_the_reserved_metadata_key()
    {
        using var t = torch.ones(1);

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(dir.File("d.safetensors"), [new("a", t), new("a", t)]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(dir.File("m.safetensors"), [new("__metadata__", t)]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(dir.File("i.safetensors"), [new("a", t)], ScalarType.Int32));
    }
}
