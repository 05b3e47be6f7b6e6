using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class CheckpointLoadingSpec
{
    public static IEnumerable<object[]> Layouts() =>
        from a in Enum.GetValues<Architecture>()
        from bf16 in new[] { false, true }
        from sharded in new[] { false, true }
        select new object[] { a, bf16, sharded };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void A_saved_checkpoint_loads_and_computes_the_same_logits(Architecture a, bool bf16OnDisk, bool sharded)
    {
        using var original = TinyModels.Random(a);
        var dir = TinyCheckpoint.Write(original, bf16OnDisk ? ScalarType.BFloat16 : ScalarType.Float32, sharded);
        if (sharded) Assert.True(File.Exists(Path.Combine(dir, Checkpoint.IndexFileName)));
        using var loaded = MoeTransformer.Load(dir, ModuleOptions.Cpu32);
        Assert.Equal((original.Config with { TorchDtype = null }).ToJson().ToJsonString(), (loaded.Config with { TorchDtype = null }).ToJson().ToJsonString());

        long[] prompt = [3, 14, 15, 92, 65];
        using var scope = NewDisposeScope();
        var c1 = original.CreateCaches(1, 16); var c2 = loaded.CreateCaches(1, 16);
        var expected = original.Forward(tensor(prompt), StepLayout.Single(0, 0, 5), c1);
        var actual = loaded.Forward(tensor(prompt), StepLayout.Single(0, 0, 5), c2);
        // bf16 on disk rounds every weight (8-bit mantissa), so only the float32 round trip is exact.
        if (bf16OnDisk) Assert.True(allclose(actual, expected, rtol: 0.1, atol: 0.15), $"max diff {(actual - expected).abs().max().item<float>()}");
        else Assert.True(actual.eq(expected).all().item<bool>(), "float32 round trip must be exact");
        foreach (var c in c1.Concat(c2)) c.Dispose();
    }

    [Fact]
    public void The_model_runs_in_bfloat16_when_asked()
    {
        using var original = TinyModels.Random(Architecture.Olmoe);
        var dir = TinyCheckpoint.Write(original);
        using var loaded = MoeTransformer.Load(dir, new ModuleOptions(ScalarType.BFloat16, CPU));
        Assert.Equal(ScalarType.BFloat16, loaded.Layers[0].self_attn.q_proj.weight.dtype);
        using var engine = new Generation.LocalEngine(loaded, new Generation.BatchingOptions { MaxBatchSize = 1, ContextLength = 32 });
        Assert.Equal(6, engine.Run([new Generation.GenerationRequest("r", [1, 2, 3], 6)])["r"].Generated.Count);
    }

    [Fact]
    public void A_missing_tensor_is_named_with_the_checkpoint()
    {
        using var original = TinyModels.Random(Architecture.Mixtral);
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        original.Config.Save(dir);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"),
            ModuleWeights.Named(original).Where(p => p.Key != "model.layers.1.block_sparse_moe.experts.3.w2.weight"));
        var e = Assert.Throws<CheckpointException>(() => MoeTransformer.Load(dir, ModuleOptions.Cpu32));
        Assert.Contains("model.layers.1.block_sparse_moe.experts.3.w2.weight", e.Message);
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void An_unexpected_tensor_is_named()
    {
        using var original = TinyModels.Random(Architecture.Qwen3Moe);
        var dir = TinyCheckpoint.Write(original);
        using var extra = ones(3);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"),
            ModuleWeights.Named(original).Append(new("model.layers.0.mlp.shared_expert_gate.weight", extra)));
        var e = Assert.Throws<CheckpointException>(() => MoeTransformer.Load(dir, ModuleOptions.Cpu32));
        Assert.Contains("unexpected", e.Message);
        Assert.Contains("model.layers.0.mlp.shared_expert_gate.weight", e.Message);
    }

    [Fact]
    public void A_mis_shaped_tensor_is_named_with_both_shapes()
    {
        using var original = TinyModels.Random(Architecture.Qwen2Moe);
        var dir = TinyCheckpoint.Write(original);
        using var wrong = zeros(7, 7);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"),
            ModuleWeights.Named(original).Select(p => p.Key == "model.layers.0.self_attn.k_proj.weight" ? new(p.Key, wrong) : p));
        var e = Assert.Throws<CheckpointException>(() => MoeTransformer.Load(dir, ModuleOptions.Cpu32));
        Assert.Contains("model.layers.0.self_attn.k_proj.weight", e.Message);
        Assert.Contains("[7, 7]", e.Message);
        Assert.Contains("[16, 32]", e.Message);
    }

    [Fact]
    public void One_expert_loads_alone_from_a_sharded_checkpoint()
    {
        using var original = TinyModels.Random(Architecture.Mixtral);
        var dir = TinyCheckpoint.Write(original, sharded: true);
        using var checkpoint = Checkpoint.Open(dir);
        var names = new WeightNames(Architecture.Mixtral).Expert(1, 4);
        var expertFile = checkpoint.Entry(names.Gate).FilePath;
        // Delete every shard that holds none of this expert's tensors: loading it must not need them.
        var needed = new[] { names.Gate, names.Up, names.Down }.Select(n => checkpoint.Entry(n).FilePath).ToHashSet();
        foreach (var f in checkpoint.Files.Where(f => !needed.Contains(f))) File.Delete(f);
        using var expert = new ExpertMlp(32, 48, mixtralNames: true, ModuleOptions.Cpu32);
        ModuleWeights.Load(expert, "model.layers.1.block_sparse_moe.experts.4.", new CheckpointWeights(checkpoint), ModuleOptions.Cpu32);
        using var x = randn(3, 32);
        using var expected = original.Layers[1].Moe!.experts[4].forward(x);
        using var actual = expert.forward(x);
        Assert.True(actual.eq(expected).all().item<bool>());
        Assert.True(File.Exists(expertFile));
    }

    [Theory]
    [InlineData("{\"architectures\":[\"LlamaForCausalLM\"]}", "LlamaForCausalLM")]
    [InlineData("{\"architectures\":[\"MixtralForCausalLM\"],\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":4}}", "longrope")]
    [InlineData("{\"architectures\":[\"MixtralForCausalLM\"],\"hidden_size\":\"big\"}", "hidden_size")]
    public void Unsupported_or_malformed_configs_name_the_problem_and_what_is_supported(string json, string named)
    {
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), json);
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir));
        Assert.Contains(named, e.Message);
        if (named == "LlamaForCausalLM") Assert.Contains("OlmoeForCausalLM", e.Message);
    }
}
