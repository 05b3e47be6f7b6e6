using System.Text.Json.Nodes;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public sealed class ConfigDefaultsSpec
{
    static ModelConfig Parse(string json) => ModelConfig.Parse(JsonNode.Parse(json)!.AsObject());

    [Fact]
    public void Keys_a_config_leaves_out_take_the_values_of_transformers_configuration_class()
    {
        var qwen3 = Parse("""{"architectures":["Qwen3MoeForCausalLM"]}""");
        Assert.False(qwen3.NormTopKProb); // Qwen3MoeConfig.norm_topk_prob = False (the loader used to assume true)
        Assert.Equal((151936, 2048, 24, 32, 4, 128, 8, 768, 32768), (qwen3.VocabSize, qwen3.HiddenSize, qwen3.NumLayers, qwen3.NumHeads,
            qwen3.NumKvHeads, qwen3.NumExperts, qwen3.TopK, qwen3.ExpertIntermediateSize, qwen3.MaxPositionEmbeddings));
        Assert.Equal(1e-6, qwen3.RmsNormEps);

        var mixtral = Parse("""{"architectures":["MixtralForCausalLM"]}""");
        Assert.True(mixtral.NormTopKProb);
        Assert.Equal((32000, 4096, 14336, 8, 8, 2, 131072, 1e6, 1e-5), (mixtral.VocabSize, mixtral.HiddenSize, mixtral.IntermediateSize,
            mixtral.NumKvHeads, mixtral.NumExperts, mixtral.TopK, mixtral.MaxPositionEmbeddings, mixtral.RopeTheta, mixtral.RmsNormEps));
        Assert.Equal(1, mixtral.BosTokenId);
        Assert.Equal([2], mixtral.EosTokenIds);

        var olmoe = Parse("""{"architectures":["OlmoeForCausalLM"],"num_attention_heads":8}""");
        Assert.Equal(8, olmoe.NumKvHeads); // num_key_value_heads None -> the attention heads
        Assert.Equal((64, 8, false, 50304), (olmoe.NumExperts, olmoe.TopK, olmoe.NormTopKProb, olmoe.VocabSize));
        Assert.Equal([50279], olmoe.EosTokenIds);
    }

    [Fact]
    public void Qwen2_moe_qkv_bias_is_read_not_assumed()
    {
        Assert.True(Parse("""{"architectures":["Qwen2MoeForCausalLM"]}""").AttentionBias);
        Assert.False(Parse("""{"architectures":["Qwen2MoeForCausalLM"],"qkv_bias":false}""").AttentionBias);
        var defaults = Parse("""{"architectures":["Qwen2MoeForCausalLM"]}""");
        Assert.Equal((60, 4, 1408, 5632, false), (defaults.NumExperts, defaults.TopK, defaults.ExpertIntermediateSize,
            defaults.SharedExpertIntermediateSize, defaults.NormTopKProb));
    }

    public static TheoryData<string> YarnCases => new(ReferenceCases().Select(c => c.Key));

    static IEnumerable<KeyValuePair<string, JsonNode?>> ReferenceCases() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.Directory("rope"), "yarn.json")))!.AsObject();

    [Theory]
    [MemberData(nameof(YarnCases))]
    public void Yarn_frequencies_and_attention_factor_match_transformers(string name)
    {
        var c = ReferenceCases().Single(p => p.Key == name).Value!;
        int headDim = c["head_dim"]!.GetValue<int>();
        var config = Parse($$"""
            {"architectures":["Qwen3MoeForCausalLM"],"head_dim":{{headDim}},"rope_theta":{{c["rope_theta"]!.ToJsonString()}},
             "max_position_embeddings":{{c["max_position_embeddings"]}},"rope_scaling":{{c["rope_scaling"]!.ToJsonString()}}}
            """);
        Assert.Equal("yarn", config.RopeScaling!.Type);
        var (inverse, attention) = config.RopeScaling.Compute(headDim, config.RopeTheta, config.MaxPositionEmbeddings);
        var expected = c["inv_freq"]!.AsArray().Select(n => n!.GetValue<double>()).ToArray();
        Assert.Equal(expected.Length, inverse.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(inverse[i] - expected[i]) <= 2e-6 * expected[i], $"{name} inv_freq[{i}]: {inverse[i]} vs transformers {expected[i]}");
        Assert.Equal(c["attention_factor"]!.GetValue<double>(), attention, 12);

        // The table the attention layers read: cos and sin of position × frequency, scaled by the attention factor.
        using var rotary = new RotaryEmbedding(headDim, 64, config.RopeTheta, ModuleOptions.Cpu32, config.RopeScaling, config.MaxPositionEmbeddings);
        using var x = ones(1, 1, headDim);
        using var at = tensor(new long[] { 37 });
        using var rotated = rotary.Apply(x, at);                // x·cos + rotate_half(x)·sin, with x all ones
        var values = rotated.data<float>().ToArray();
        for (int i = 0; i < headDim / 2; i++)
        {
            double angle = 37 * (float)expected[i];
            Assert.True(Math.Abs((Math.Cos(angle) - Math.Sin(angle)) * attention - values[i]) < 1e-4, $"{name} rotated[{i}] = {values[i]}");
        }
    }
}
