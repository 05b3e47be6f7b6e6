namespace MoeCluster.Placement;

/// <summary>
/// Super experts (Su et al., "Unveiling Super Experts in Mixture-of-Experts Large Language Models", 2025): the few
/// experts whose down_proj output has rare but extreme activation outliers, which become the massive activations behind
/// attention sinks; pruning three of them breaks Qwen3-30B-A3B. They must keep full precision.
/// </summary>
/// <remarks>Detected from a routing profile's largest output activation per expert (<see cref="LayerRoutingStatistics.MaxOutput"/>,
/// recorded by <c>moecluster routing-stats</c>), as the paper profiles them: an expert is a super expert when its
/// largest |activation| is at or above the 99.5th percentile of all experts' maxima <i>and</i> at least
/// <see cref="OutlierFactor"/> times their median. The second condition is ours: with a few dozen experts the
/// percentile alone always names the largest one, outlier or not; real super experts sit two to three orders of
/// magnitude above the rest, so a factor of 10 separates them without naming an ordinary expert.</remarks>
public static class SuperExperts
{
    /// <summary>How far above the median expert's largest activation a super expert's must be.</summary>
    public const double OutlierFactor = 10;

    /// <summary>The super experts in <paramref name="profile"/>; empty when it has no activation maxima.</summary>
    public static IReadOnlySet<ExpertId> Detect(RoutingSnapshot profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var maxima = profile.Layers.Where(l => l.MaxOutput is not null)
            .SelectMany(l => l.MaxOutput!.Select((m, e) => (Id: new ExpertId(l.Layer, e), Max: m)))
            .Where(x => x.Max > 0).ToList();
        if (maxima.Count == 0)
            return new HashSet<ExpertId>();
        var sorted = maxima.Select(x => x.Max).Order().ToArray();
        double threshold = Math.Max(Quantile(sorted, 0.995), OutlierFactor * Quantile(sorted, 0.5));
        return maxima.Where(x => x.Max >= threshold).Select(x => x.Id).ToHashSet();
    }

    /// <summary>Linear interpolation between closest ranks (NumPy's default).</summary>
    private static double Quantile(double[] sorted, double q)
    {
        var position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }
}
