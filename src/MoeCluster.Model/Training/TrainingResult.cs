namespace MoeCluster.Model.Training;

/// <summary>What a training run produced. Perplexities are measured on the saved checkpoint (weights as stored).</summary>
public sealed record TrainingResult(
    string OutputDirectory,
    ModelConfig Config,
    int Steps,
    long TrainTokens,
    PerplexityResult HeldOut,
    PerplexityResult HeldOutSubset,
    double UnigramPerplexity,
    TimeSpan TrainingTime)
{
    /// <summary>Parameters a token passes through: everything but the experts it is not routed to.</summary>
    public long ActiveParameters { get; init; }
    public long TotalParameters { get; init; }
}
