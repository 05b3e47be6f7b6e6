namespace MoeCluster.Placement;

/// <summary>
/// Which routed experts to hold in int8 (MC-MoE, QuantMoE-Bench: experts differ in importance, so precision per expert
/// beats uniform quantisation): <c>none</c>; <c>cold</c>, the least-loaded experts of each layer first, up to a budget
/// (the share of each layer's experts); <c>all</c>. Super experts (<see cref="SuperExperts"/>) are never chosen;
/// routers, shared experts, dense MLPs and attention are never int8 (they are not routed experts).
/// </summary>
public static class ExpertPrecision
{
    /// <summary>The experts to hold in int8.</summary>
    /// <param name="profile">Routing statistics with each expert's load (and activation maxima for super experts).</param>
    /// <param name="mode">none, cold or all.</param>
    /// <param name="budget">With <c>cold</c>: the share of each layer's experts to quantise, in [0, 1].</param>
    /// <exception cref="ArgumentException">An unknown mode or a budget outside [0, 1].</exception>
    public static IReadOnlySet<ExpertId> Int8Experts(RoutingSnapshot profile, string mode, double budget)
    {
        ArgumentNullException.ThrowIfNull(profile);
        if (!(budget is >= 0 and <= 1))
            throw new ArgumentException($"The int8 budget is a share of each layer's experts in [0, 1], got {budget}.", nameof(budget));
        var super = SuperExperts.Detect(profile);
        var chosen = new HashSet<ExpertId>();
        if (mode == "none")
            return chosen;
        if (mode is not ("cold" or "all"))
            throw new ArgumentException($"'{mode}' is not an int8 mode; use none, cold or all.", nameof(mode));
        foreach (var layer in profile.Layers)
        {
            var candidates = Enumerable.Range(0, profile.Experts).Select(e => new ExpertId(layer.Layer, e)).Where(e => !super.Contains(e));
            if (mode == "cold")
            {
                int take = (int)Math.Round(budget * profile.Experts, MidpointRounding.AwayFromZero);
                candidates = candidates.OrderBy(e => layer.Load[e.Expert]).ThenBy(e => e.Expert).Take(take);
            }
            chosen.UnionWith(candidates);
        }
        return chosen;
    }
}
