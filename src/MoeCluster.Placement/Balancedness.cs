namespace MoeCluster.Placement;

/// <summary>
/// Balancedness = mean ÷ max tokens per expert of a layer, as vLLM's EPLB logs it: 1.0 is perfectly even, 1/E means one
/// of E experts took everything. A layer that received no tokens counts as balanced (1.0).
/// </summary>
public static class Balancedness
{
    /// <summary>Mean ÷ max tokens over the logical experts of <paramref name="layer"/> present in the window.</summary>
    public static double OfLayer(LoadWindow load, int layer)
    {
        ArgumentNullException.ThrowIfNull(load);
        return MeanOverMax(load.Tokens.Where(kv => kv.Key.Layer == layer).Select(kv => (double)kv.Value));
    }

    /// <summary><see cref="OfLayer(LoadWindow, int)"/> for every layer in the window.</summary>
    public static IReadOnlyDictionary<int, double> PerLayer(LoadWindow load)
    {
        ArgumentNullException.ThrowIfNull(load);
        return load.Layers.ToDictionary(layer => layer, layer => OfLayer(load, layer));
    }

    /// <summary>
    /// Mean ÷ max tokens per replica over the replicas of <paramref name="layer"/>'s experts in <paramref name="plan"/>,
    /// with each expert's tokens split evenly over its replicas, as routers do (<see cref="ReplicaSplitter"/>).
    /// </summary>
    public static double OfLayer(LoadWindow load, PlacementPlan plan, int layer)
    {
        ArgumentNullException.ThrowIfNull(load);
        ArgumentNullException.ThrowIfNull(plan);
        return MeanOverMax(plan.Replicas
            .Where(kv => kv.Key.Layer == layer)
            .SelectMany(kv => Enumerable.Repeat(load.TokensOf(kv.Key) / (double)kv.Value.Count, kv.Value.Count)));
    }

    /// <summary><see cref="OfLayer(LoadWindow, PlacementPlan, int)"/> for every layer in the plan.</summary>
    public static IReadOnlyDictionary<int, double> PerLayer(LoadWindow load, PlacementPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.Experts.Select(e => e.Layer).Distinct().ToDictionary(layer => layer, layer => OfLayer(load, plan, layer));
    }

    /// <summary>
    /// Mean ÷ max tokens per node for <paramref name="layer"/> (replicas split evenly), over every node in the plan:
    /// what bounds a layer's step time when each node computes its experts in parallel.
    /// </summary>
    public static double AcrossNodes(LoadWindow load, PlacementPlan plan, int layer)
    {
        ArgumentNullException.ThrowIfNull(load);
        ArgumentNullException.ThrowIfNull(plan);
        var perNode = plan.Nodes.ToDictionary(n => n, _ => 0.0, StringComparer.Ordinal);
        foreach (var (expert, nodes) in plan.Replicas.Where(kv => kv.Key.Layer == layer))
            foreach (var node in nodes)
                perNode[node] += load.TokensOf(expert) / (double)nodes.Count;
        return MeanOverMax(perNode.Values);
    }

    private static double MeanOverMax(IEnumerable<double> tokens)
    {
        var values = tokens.ToList();
        var max = values.Count == 0 ? 0 : values.Max();
        return max <= 0 ? 1.0 : values.Average() / max;
    }
}
