namespace MoeCluster.Model.Generation;

/// <summary>How the next token is chosen. Temperature 0 (or <see cref="Greedy"/>) means argmax; otherwise
/// temperature → top-k → top-p → sample, in Hugging Face's order. A seed makes sampling reproducible per request.</summary>
public sealed record SamplingOptions
{
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most likely tokens; 0 = all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p; 1 = all.</summary>
    public double TopP { get; init; } = 1.0;
    public long? Seed { get; init; }

    public bool Greedy => Temperature == 0;

    public static SamplingOptions GreedyDecoding { get; } = new() { Temperature = 0 };

    public void Validate()
    {
        if (Temperature < 0 || double.IsNaN(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be >= 0");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "top_k must be >= 0");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top_p must be in (0, 1]");
    }
}
