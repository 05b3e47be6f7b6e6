using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

/// <summary>Every broken checkpoint is refused with a message naming the file and, where relevant, the tensor.</summary>
public sealed class CheckpointErrorSpec : IDisposable
{
    readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    string WriteRaw(string name, byte[] bytes)
    {
        var path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    static CheckpointException OpenFails(string path) => Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));

    [Fact]
    public void A_file_shorter_than_the_length_prefix_is_refused()
    {
        var path = WriteRaw("short.safetensors", [1, 2, 3]);

        var error = OpenFails(path);

        Assert.Contains(path, error.Message);
        Assert.Contains("3 bytes", error.Message);
        Assert.Contains("8-byte header length", error.Message);
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void A_header_length_past_the_end_of_the_file_is_reported_as_truncated()
    {
        var path = WriteRaw("cut.safetensors", RawSafetensors.Build("{}", [], declaredHeaderLength: 500));

        var error = OpenFails(path);

        Assert.Contains(path, error.Message);
        Assert.Contains("500-byte header", error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void An_absurd_header_length_is_refused_before_allocating_it()
    {
        var path = WriteRaw("huge.safetensors", RawSafetensors.Build("{}", [], declaredHeaderLength: ulong.MaxValue - 3));

        var error = OpenFails(path);

        Assert.Contains(path, error.Message);
        Assert.Contains("100000000-byte limit", error.Message);
    }

    [Fact]
    public void A_header_that_is_not_json_is_refused()
    {
        var path = WriteRaw("garbage.safetensors", RawSafetensors.Build("{\"w\": {\"dtype\": ", []));

        var error = OpenFails(path);

        Assert.Contains(path, error.Message);
        Assert.Contains("not valid JSON", error.Message);
    }

    [Fact]
    public void A_header_that_is_not_a_json_object_is_refused()
    {
        var path = WriteRaw("array.safetensors", RawSafetensors.Build("[1, 2]", []));

        var error = OpenFails(path);

        Assert.Contains(path, error.Message);
        Assert.Contains("not an object", error.Message);
    }

    [Fact]
    public void An_unknown_dtype_names_the_tensor_the_file_and_the_dtype()
    {
        var path = WriteRaw("dtype.safetensors",
            RawSafetensors.Build("{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", [0, 0, 0, 0]));

        var error = OpenFails(path);

        Assert.Contains("tensor 'w'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("'Q7'", error.Message);
        Assert.Equal("w", error.TensorName);
    }

    [Fact]
    public void A_shape_that_disagrees_with_the_data_offsets_is_refused()
    {
        var path = WriteRaw("shape.safetensors",
            RawSafetensors.Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", new byte[20]));

        var error = OpenFails(path);

        Assert.Contains("tensor 'w'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("[2, 3]", error.Message);
        Assert.Contains("needs 24 bytes", error.Message);
        Assert.Contains("span 20", error.Message);
    }

    [Fact]
    public void A_missing_field_or_negative_dimension_is_refused_with_the_tensor_name()
    {
        var noShape = WriteRaw("noshape.safetensors", RawSafetensors.Build("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", new byte[4]));
        var negative = WriteRaw("neg.safetensors", RawSafetensors.Build("{\"v\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4]));

        var first = OpenFails(noShape);
        var second = OpenFails(negative);

        Assert.Contains("tensor 'w'", first.Message);
        Assert.Contains("'shape'", first.Message);
        Assert.Contains("tensor 'v'", second.Message);
        Assert.Contains("-1", second.Message);
    }

    [Fact]
    public void A_truncated_data_section_names_the_tensor_the_bytes_it_needs_and_what_the_file_has()
    {
        var path = dir.File("trunc.safetensors");
        using var a = torch.ones(4);
        using var b = torch.ones(4);
        SafetensorsWriter.Write(path, [new("a", a), new("b", b)]);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length - 6);

        var error = OpenFails(path);

        Assert.Equal($"tensor 'b' in {path}: needs bytes [16, 32) of the data section but {path} has only 26; the file is truncated", error.Message);
    }

    [Fact]
    public void A_missing_tensor_names_the_checkpoint_its_size_its_files_and_close_names()
    {
        using var w = torch.ones(1);
        SafetensorsWriter.Write(dir.File("model.safetensors"), [new("model.layers.0.mlp.gate.weight", w), new("lm_head.weight", w)]);
        using var checkpoint = Checkpoint.Open(dir.Path);

        var error = Assert.Throws<CheckpointException>(() => checkpoint.Entry("model.layers.0.mlp.gate.wieght"));

        Assert.StartsWith($"tensor 'model.layers.0.mlp.gate.wieght' not found in checkpoint {dir.Path} (2 tensors; files: model.safetensors)", error.Message);
        Assert.Contains("closest: 'model.layers.0.mlp.gate.weight'", error.Message);
        Assert.False(checkpoint.Contains("model.layers.0.mlp.gate.wieght"));
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_names_both_shapes_and_the_file()
    {
        using var w = torch.ones(2, 3);
        var path = dir.File("model.safetensors");
        SafetensorsWriter.Write(path, [new("w", w)]);
        using var checkpoint = Checkpoint.Open(dir.Path);

        var error = Assert.Throws<CheckpointException>(() => checkpoint.Read("w", ScalarType.Float32, expectedShape: [3, 2]));

        Assert.Equal($"tensor 'w' in {path} has shape [2, 3]; expected [3, 2]", error.Message);
    }

    [Fact]
    public void An_index_entry_pointing_to_a_missing_shard_names_the_shard_and_the_tensor()
    {
        using var w = torch.ones(2);
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), [new("present", w)]);
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            """{"metadata":{"total_size":16},"weight_map":{"present":"model-00001-of-00002.safetensors","absent":"model-00002-of-00002.safetensors"}}""");
        using var checkpoint = Checkpoint.Open(dir.Path);

        using var present = checkpoint.Read("present", ScalarType.Float32);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.Entry("absent"));

        Assert.Contains("tensor 'absent'", error.Message);
        Assert.Contains(dir.File("model-00002-of-00002.safetensors"), error.Message);
        Assert.Equal("absent", error.TensorName);
    }

    [Fact]
    public void An_index_that_maps_a_tensor_to_a_shard_without_it_says_so()
    {
        using var w = torch.ones(2);
        SafetensorsWriter.Write(dir.File("model-00001-of-00001.safetensors"), [new("present", w)]);
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            """{"weight_map":{"ghost":"model-00001-of-00001.safetensors"}}""");
        using var checkpoint = Checkpoint.Open(dir.Path);

        var error = Assert.Throws<CheckpointException>(() => checkpoint.Read("ghost", ScalarType.Float32));

        Assert.Contains("tensor 'ghost'", error.Message);
        Assert.Contains("model-00001-of-00001.safetensors", error.Message);
        Assert.Contains("does not contain it", error.Message);
    }

    [Fact]
    public void An_invalid_index_names_the_index_file()
    {
        var index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\": {\"a\": ");

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));

        Assert.Contains(index, error.Message);
        Assert.Contains("not valid JSON", error.Message);
    }

    [Fact]
    public void An_index_without_a_weight_map_or_with_a_non_string_entry_names_the_index_file()
    {
        var index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"metadata\": {}}");
        var noMap = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));
        File.WriteAllText(index, "{\"weight_map\": {\"w\": 3}}");
        var badEntry = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));

        Assert.Contains(index, noMap.Message);
        Assert.Contains("weight_map", noMap.Message);
        Assert.Contains(index, badEntry.Message);
        Assert.Contains("tensor 'w'", badEntry.Message);
    }

    [Fact]
    public void An_index_cannot_point_outside_the_checkpoint_directory()
    {
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map":{"w":"../elsewhere.safetensors"}}""");

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));

        Assert.Contains("tensor 'w'", error.Message);
        Assert.Contains("outside the checkpoint directory", error.Message);
    }

    [Fact]
    public void A_directory_without_weights_says_what_it_looked_for()
    {
        File.WriteAllText(dir.File("config.json"), "{}");

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));

        Assert.Contains(dir.Path, error.Message);
        Assert.Contains("model.safetensors.index.json", error.Message);
        Assert.Contains("model.safetensors", error.Message);
    }

    [Fact]
    public void Several_safetensors_files_without_an_index_are_ambiguous()
    {
        using var w = torch.ones(1);
        SafetensorsWriter.Write(dir.File("a.safetensors"), [new("w", w)]);
        SafetensorsWriter.Write(dir.File("b.safetensors"), [new("w", w)]);

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(dir.Path));

        Assert.Contains("a.safetensors, b.safetensors", error.Message);
        Assert.Contains("model.safetensors.index.json", error.Message);
    }

    [Fact]
    public void A_missing_directory_or_file_is_named()
    {
        var missingDir = dir.File("nope");
        var missingFile = dir.File("nope.safetensors");

        var dirError = Assert.Throws<CheckpointException>(() => Checkpoint.Open(missingDir));
        var fileError = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(missingFile));

        Assert.Contains(missingDir, dirError.Message);
        Assert.Contains(missingFile, fileError.Message);
        Assert.Contains("does not exist", fileError.Message);
    }

    [Fact]
    public void Reading_after_dispose_is_refused()
    {
        using var w = torch.ones(1);
        SafetensorsWriter.Write(dir.File("model.safetensors"), [new("w", w)]);
        var checkpoint = Checkpoint.Open(dir.Path);
        checkpoint.Dispose();

        Assert.Throws<ObjectDisposedException>(() => checkpoint.Read("w", ScalarType.Float32));
    }
}
