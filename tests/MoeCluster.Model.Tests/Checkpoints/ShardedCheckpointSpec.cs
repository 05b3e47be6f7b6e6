using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

public sealed class ShardedCheckpointSpec : IDisposable
{
    readonly TempDirectory dir = new();
    readonly List<Tensor> owned = [];

    public void Dispose()
    {
        foreach (var t in owned) t.Dispose();
        dir.Dispose();
    }

    /// <summary>Tensor <paramref name="name"/> of <paramref name="elements"/> float32s with values unique to it.</summary>
    KeyValuePair<string, Tensor> Weight(string name, long elements, float start)
    {
        var t = torch.arange(start, start + elements, dtype: ScalarType.Float32);
        owned.Add(t);
        return new(name, t);
    }

    [Fact]
    public void Sharded_write_produces_transformers_file_names_and_index_text()
    {
        // 8 bytes each, 16 per shard: [a, b] fill shard 1, c starts shard 2.
        SafetensorsWriter.WriteSharded(dir.Path, [Weight("a", 2, 0), Weight("b", 2, 10), Weight("c", 2, 20)], maxShardBytes: 16);

        var files = Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json" }, files);
        Assert.Equal(
            """
            {
              "metadata": {
                "total_parameters": 6,
                "total_size": 24
              },
              "weight_map": {
                "a": "model-00001-of-00002.safetensors",
                "b": "model-00001-of-00002.safetensors",
                "c": "model-00002-of-00002.safetensors"
              }
            }

            """.ReplaceLineEndings("\n"),
            File.ReadAllText(dir.File("model.safetensors.index.json")));
        using var shard = SafetensorsFile.Open(dir.File("model-00001-of-00002.safetensors"));
        Assert.Equal("pt", shard.Metadata["format"]);
    }

    [Fact]
    public void A_tensor_larger_than_the_shard_limit_gets_a_shard_of_its_own_as_huggingface_hub_assigns_it()
    {
        // huggingface_hub appends the oversized tensor's shard before the one still being filled.
        SafetensorsWriter.WriteSharded(dir.Path, [Weight("small", 1, 0), Weight("huge", 10, 1), Weight("tail", 1, 20)], maxShardBytes: 16);

        using var checkpoint = Checkpoint.Open(dir.Path);

        Assert.EndsWith("model-00001-of-00002.safetensors", checkpoint.Entry("huge").FilePath);
        Assert.EndsWith("model-00002-of-00002.safetensors", checkpoint.Entry("small").FilePath);
        Assert.EndsWith("model-00002-of-00002.safetensors", checkpoint.Entry("tail").FilePath);
    }

    [Fact]
    public void Every_tensor_of_a_sharded_checkpoint_reads_back_with_its_values()
    {
        var weights = Enumerable.Range(0, 6).Select(i => Weight($"model.layers.{i}.mlp.experts.0.w1.weight", 4, i * 100)).ToList();
        SafetensorsWriter.WriteSharded(dir.Path, weights, maxShardBytes: 16, storeAs: ScalarType.BFloat16);

        using var checkpoint = Checkpoint.Open(dir.Path);

        Assert.Equal(3, checkpoint.Files.Count);
        Assert.Equal(weights.Select(w => w.Key).Order(StringComparer.Ordinal), checkpoint.Names);
        foreach (var (name, expected) in weights)
        {
            Assert.True(checkpoint.Contains(name));
            Assert.Equal("BF16", checkpoint.Entry(name).DType);
            using var read = checkpoint.Read(name, ScalarType.Float32, expectedShape: [4]);
            using var rounded = expected.to(ScalarType.BFloat16).to(ScalarType.Float32);
            Assert.True(TensorAssert.Same(read, rounded), name);
        }
    }

    [Fact]
    public void Reading_one_tensor_never_touches_shards_that_do_not_hold_it()
    {
        SafetensorsWriter.WriteSharded(dir.Path, [Weight("expert.0", 4, 0), Weight("expert.1", 4, 50)], maxShardBytes: 16);
        using var checkpoint = Checkpoint.Open(dir.Path);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));

        using var read = checkpoint.Read("expert.0", ScalarType.Float32);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.Read("expert.1", ScalarType.Float32));

        Assert.Equal(new[] { 0f, 1f, 2f, 3f }, read.data<float>().ToArray());
        Assert.Contains("'expert.1'", error.Message);
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void Everything_within_one_shard_is_saved_as_model_safetensors_without_index_and_stale_shards_are_removed()
    {
        SafetensorsWriter.WriteSharded(dir.Path, [Weight("a", 4, 0), Weight("b", 4, 0)], maxShardBytes: 16);
        Assert.True(File.Exists(dir.File("model.safetensors.index.json")));

        SafetensorsWriter.WriteSharded(dir.Path, [Weight("a", 4, 7), Weight("b", 4, 9)], maxShardBytes: 1 << 20);

        var files = Directory.GetFiles(dir.Path).Select(Path.GetFileName).ToArray();
        Assert.Equal(new[] { "model.safetensors" }, files);
        using var checkpoint = Checkpoint.Open(dir.Path);
        using var b = checkpoint.Read("b", ScalarType.Float32);
        Assert.Null(checkpoint.IndexPath);
        Assert.Equal(9f, b[0].item<float>());
    }

    [Fact]
    public void A_sharded_save_over_a_single_file_save_removes_the_old_model_safetensors()
    {
        SafetensorsWriter.WriteSharded(dir.Path, [Weight("a", 4, 0)], maxShardBytes: 1 << 20);
        File.WriteAllText(dir.File("config.json"), "{}");

        SafetensorsWriter.WriteSharded(dir.Path, [Weight("a", 4, 0), Weight("b", 4, 1)], maxShardBytes: 16);

        Assert.False(File.Exists(dir.File("model.safetensors")));
        Assert.True(File.Exists(dir.File("config.json")));
        using var checkpoint = Checkpoint.Open(dir.Path);
        Assert.NotNull(checkpoint.IndexPath);
    }

    [Fact]
    public void A_directory_with_one_differently_named_safetensors_file_opens_it()
    {
        using var t = torch.ones(2);
        SafetensorsWriter.Write(dir.File("adapter.safetensors"), [new("t", t)]);

        using var checkpoint = Checkpoint.Open(dir.Path);

        Assert.Equal(new[] { "t" }, checkpoint.Names);
        Assert.EndsWith("adapter.safetensors", checkpoint.Entry("t").FilePath);
    }
}
