namespace MoeCluster.Model.Training;

/// <summary>Routing counts of one MoE layer over an evaluation: tokens per expert (each token counts once per expert
/// it is routed to) and balancedness = mean ÷ max, the statistic vLLM's EPLB logs (1 = perfectly even).</summary>
public sealed record ExpertLoad(int Layer, IReadOnlyList<long> TokensPerExpert)
{
    public long Total => TokensPerExpert.Sum();

    /// <summary>Share of routing slots per expert, in percent.</summary>
    public IReadOnlyList<double> Percent => TokensPerExpert.Select(n => Total == 0 ? 0 : 100.0 * n / Total).ToArray();

    public double Balancedness => TokensPerExpert.Max() == 0 ? 0 : TokensPerExpert.Average() / TokensPerExpert.Max();

    public static IReadOnlyList<ExpertLoad> FromCounts(ModelConfig config, long[][] counts) =>
        config.MoeLayers.Select(l => new ExpertLoad(l, counts[l])).ToArray();
}
