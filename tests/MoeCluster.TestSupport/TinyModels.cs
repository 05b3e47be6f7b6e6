using MoeCluster.Model;
using MoeCluster.Model.Layers;

namespace MoeCluster.TestSupport;

/// <summary>Tiny configs of each architecture, with the options that make each one different switched on.</summary>
public static class TinyModels
{
    public static ModelConfig Config(Architecture a) => a switch
    {
        Architecture.Mixtral => Base(a) with { NormTopKProb = true },
        // Layer 1 is dense (mlp_only_layers) and every layer has a gated shared expert.
        Architecture.Qwen2Moe => Base(a) with { NumLayers = 3, ExpertIntermediateSize = 24, SharedExpertIntermediateSize = 40, MlpOnlyLayers = [1], NormTopKProb = false, AttentionBias = true },
        // head_dim deliberately differs from hidden / heads, as in real Qwen3-MoE checkpoints.
        Architecture.Qwen3Moe => Base(a) with { HeadDim = 16, ExpertIntermediateSize = 24, NormTopKProb = true },
        Architecture.Olmoe => Base(a) with { ClipQkv = 0.35, NormTopKProb = false },
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    static ModelConfig Base(Architecture a) => new()
    {
        Architecture = a, VocabSize = 97, HiddenSize = 32, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8,
        IntermediateSize = 48, ExpertIntermediateSize = 48, NumExperts = 6, TopK = 2, NormTopKProb = true,
        RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 256, EosTokenIds = [96], BosTokenId = 1,
    };

    public static MoeTransformer Random(Architecture a, long seed = 7, ModuleOptions? o = null)
    {
        var m = new MoeTransformer(Config(a), o ?? ModuleOptions.Cpu32);
        // Large enough weights that routing and attention are far from uniform.
        ModuleWeights.InitializeRandom(m, seed, std: 0.25);
        return m;
    }

    public static IEnumerable<object[]> All() => Enum.GetValues<Architecture>().Select(a => new object[] { a });
}
