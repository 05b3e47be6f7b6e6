namespace MoeCluster.Model;

/// <summary>
/// What transformers' configuration class gives a key that config.json leaves out, per model type
/// (configuration_mixtral.py, configuration_qwen2_moe.py, configuration_qwen3_moe.py, configuration_olmoe.py), so a
/// real checkpoint's config is read as transformers reads it instead of with guesses of our own.
/// </summary>
internal sealed record ConfigDefaults
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    /// <summary>null: as many as the attention heads.</summary>
    public int? NumKvHeads { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required int NumExperts { get; init; }
    public required int TopK { get; init; }
    public int MoeIntermediateSize { get; init; }
    public int SharedExpertIntermediateSize { get; init; }
    public bool NormTopKProb { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    public static ConfigDefaults For(Architecture architecture) => architecture switch
    {
        Architecture.Mixtral => new()
        {
            VocabSize = 32000, HiddenSize = 4096, IntermediateSize = 14336, NumLayers = 32, NumHeads = 32, NumKvHeads = 8,
            MaxPositionEmbeddings = 4096 * 32, RmsNormEps = 1e-5, RopeTheta = 1e6, NumExperts = 8, TopK = 2,
            NormTopKProb = true, BosTokenId = 1, EosTokenId = 2,
        },
        Architecture.Qwen2Moe => new()
        {
            VocabSize = 151936, HiddenSize = 2048, IntermediateSize = 5632, NumLayers = 24, NumHeads = 16, NumKvHeads = 16,
            MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 10000.0, NumExperts = 60, TopK = 4,
            MoeIntermediateSize = 1408, SharedExpertIntermediateSize = 5632, NormTopKProb = false,
        },
        Architecture.Qwen3Moe => new()
        {
            VocabSize = 151936, HiddenSize = 2048, IntermediateSize = 6144, NumLayers = 24, NumHeads = 32, NumKvHeads = 4,
            MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 10000.0, NumExperts = 128, TopK = 8,
            MoeIntermediateSize = 768, NormTopKProb = false,
        },
        _ => new()
        {
            VocabSize = 50304, HiddenSize = 2048, IntermediateSize = 2048, NumLayers = 16, NumHeads = 16, NumKvHeads = null,
            MaxPositionEmbeddings = 4096, RmsNormEps = 1e-5, RopeTheta = 10000.0, NumExperts = 64, TopK = 8,
            NormTopKProb = false, EosTokenId = 50279,
        },
    };
}
