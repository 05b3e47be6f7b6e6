using MoeCluster.Model;

namespace MoeCluster.Bench.ModelCore;

/// <summary>"bench-small": Mixtral's layout scaled down so a whole model (177M parameters) fits a laptop's cache
/// hierarchy poorly enough to be realistic and runs in seconds: 8 experts, top-2, grouped-query attention 8:2.</summary>
public static class BenchSmall
{
    public const string Name = "bench-small";
    public const int PromptTokens = 128;

    public static ModelConfig Config { get; } = new()
    {
        Architecture = Architecture.Mixtral,
        VocabSize = 32000,
        HiddenSize = 512,
        NumLayers = 8,
        NumHeads = 8,
        NumKvHeads = 2,
        HeadDim = 64,
        IntermediateSize = 1408,
        ExpertIntermediateSize = 1408,
        NumExperts = 8,
        TopK = 2,
        NormTopKProb = true,
        RmsNormEps = 1e-5,
        RopeTheta = 1e6,
        MaxPositionEmbeddings = 4096,
    };

    /// <summary>bench-small written as a Hugging Face checkpoint (float32, random weights, seed 1) under the temp
    /// directory, once; the cluster-level benchmarks load it like any checkpoint.</summary>
    public static string Checkpoint()
    {
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-bench-small");
        if (File.Exists(Path.Combine(dir, "model.safetensors"))) return dir;
        Console.Error.WriteLine($"writing {Name} (random weights) to {dir} …");
        using var m = new MoeTransformer(Config, MoeCluster.Model.Layers.ModuleOptions.Cpu32, 256);
        ModuleWeights.InitializeRandom(m, seed: 1);
        Directory.CreateDirectory(dir);
        Config.Save(dir);
        MoeCluster.Model.Checkpoints.SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), ModuleWeights.Named(m));
        return dir;
    }

    public static string Describe(ModelConfig c) =>
        $"{c.Architecture} layout, vocab {c.VocabSize}, hidden {c.HiddenSize}, {c.NumLayers} layers, {c.NumHeads} heads / " +
        $"{c.NumKvHeads} KV heads (head dim {c.HeadDim}), {c.NumExperts} experts top-{c.TopK}, expert width {c.ExpertIntermediateSize}, " +
        $"rope θ {c.RopeTheta:0e0}, random weights";
}
