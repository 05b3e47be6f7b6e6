namespace MoeCluster.Placement;

/// <summary>
/// Places experts that the same tokens choose together on the same node (Speculative MoE's expert grouping), so a
/// router that sends each token's row once per node (DeepSpeed-MoE groups traffic per node) sends fewer rows.
/// </summary>
/// <remarks>
/// <para>A token's hidden state returns to its router after every MoE layer, so only co-activation <i>within</i> a
/// layer decides how many nodes a token's rows visit; each layer is partitioned on its own. The co-activation graph of
/// a layer has the layer's experts as vertices and, as edge weights, how many tokens of a routing profile chose both.
/// The plan is a balanced min-cut of that graph:</para>
/// <list type="number">
/// <item>How many experts of each layer each node holds is taken from <see cref="ExpertPlacement.Place"/> (the even
/// plan): capacities, the spread of every layer over the nodes and the per-node totals stay exactly as even placement
/// has them; only <i>which</i> experts share a node changes.</item>
/// <item>Greedy start: experts in order of co-activation strength (the sum of their edge weights), each to the node
/// with room whose experts it co-activates with most.</item>
/// <item>Refinement by pairwise swaps between nodes (Kernighan–Lin), the best swap first, while a swap cuts fewer
/// co-activations.</item>
/// </list>
/// <para>Load stays balanced: a node's share of a layer's tokens may not exceed (1 + <c>loadSlack</c>) × its share of
/// the layer's experts, or what the even plan gives it if that is more — otherwise grouping the hottest pair would put
/// a layer's work on one node. Deterministic: the same inputs give the same plan. Redundant replicas are not placed
/// here (<see cref="ReplicationPlanner"/> adds them).</para>
/// </remarks>
public static class CoactivationPlacement
{
    /// <summary>Where the nodes' co-activation placement puts each expert's primary.</summary>
    /// <param name="experts">The logical experts to place.</param>
    /// <param name="nodes">Expert nodes and their slot capacities.</param>
    /// <param name="profile">Routing statistics (co-activation and load) of the model on representative text.</param>
    /// <param name="loadSlack">How far above its fair share of a layer's tokens a node may go (0.25 = 25 %).</param>
    /// <exception cref="PlacementException">Capacity is short (as in <see cref="ExpertPlacement.Place"/>), or the profile
    /// was taken on a model with fewer experts per layer or another top-k than the experts listed.</exception>
    public static PlacementPlan Place(IReadOnlyList<ExpertId> experts, IReadOnlyList<NodeCapacity> nodes, RoutingSnapshot profile, double loadSlack = 0.25)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentOutOfRangeException.ThrowIfNegative(loadSlack);
        var even = ExpertPlacement.Place(experts, nodes);
        var maxExpert = experts.Count == 0 ? -1 : experts.Max(e => e.Expert);
        if (maxExpert >= profile.Experts)
            throw new PlacementException(
                $"The routing profile counts {profile.Experts} experts per layer but the model has expert {maxExpert}; take the profile on this model (moecluster routing-stats --model DIR).");
        var nodeOf = new Dictionary<ExpertId, string>();
        foreach (var layer in experts.Select(e => e.Layer).Distinct().Order())
        {
            var ids = experts.Where(e => e.Layer == layer).Order().ToList();
            var stats = profile.Layer(layer);
            if (stats is null || stats.Tokens == 0)
            {
                foreach (var e in ids)
                    nodeOf[e] = even.NodeOf(e);   // nothing known about this layer: even is as good as any
                continue;
            }
            foreach (var (e, node) in Partition(ids, even, stats, loadSlack))
                nodeOf[e] = node;
        }
        return new PlacementPlan(nodeOf.ToDictionary(p => p.Key, p => (IReadOnlyList<string>)[p.Value]));
    }

    /// <summary>Share of the profile's co-activated pairs (within a layer) whose two experts the plan puts on one node,
    /// over every layer, or over <paramref name="layer"/> only. 0 when the profile has no pairs.</summary>
    public static double ColocatedShare(PlacementPlan plan, RoutingSnapshot profile, int? layer = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(profile);
        long together = 0, all = 0;
        foreach (var stats in profile.Layers.Where(l => layer is null || l.Layer == layer))
        {
            var placed = plan.Experts.Where(e => e.Layer == stats.Layer).ToList();
            for (var i = 0; i < placed.Count; i++)
                for (var j = i + 1; j < placed.Count; j++)
                {
                    var w = stats.PairCount(placed[i].Expert, placed[j].Expert);
                    all += w;
                    if (string.Equals(plan.NodeOf(placed[i]), plan.NodeOf(placed[j]), StringComparison.Ordinal))
                        together += w;
                }
        }
        return all == 0 ? 0 : (double)together / all;
    }

    private static IEnumerable<(ExpertId, string)> Partition(List<ExpertId> ids, PlacementPlan even, LayerRoutingStatistics stats, double slack)
    {
        int n = ids.Count;
        var nodes = ids.Select(even.NodeOf).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var size = nodes.Select(node => ids.Count(e => even.NodeOf(e) == node)).ToArray();
        var w = new long[n, n];
        var load = new double[n];
        var strength = new long[n];
        for (var a = 0; a < n; a++)
        {
            load[a] = ids[a].Expert < stats.Load.Count ? stats.Load[ids[a].Expert] : 0;
            for (var b = 0; b < n; b++)
            {
                w[a, b] = stats.PairCount(ids[a].Expert, ids[b].Expert);
                strength[a] += w[a, b];
            }
        }
        var total = load.Sum();
        var cap = new double[nodes.Length];
        for (var k = 0; k < nodes.Length; k++)
        {
            var evenLoad = Enumerable.Range(0, n).Where(a => even.NodeOf(ids[a]) == nodes[k]).Sum(a => load[a]);
            cap[k] = Math.Max(evenLoad, (1 + slack) * total * size[k] / n);
        }

        // Greedy start.
        var part = Enumerable.Repeat(-1, n).ToArray();
        var count = new int[nodes.Length];
        var nodeLoad = new double[nodes.Length];
        foreach (var a in Enumerable.Range(0, n).OrderByDescending(a => strength[a]).ThenBy(a => a))
        {
            var best = Enumerable.Range(0, nodes.Length)
                .Where(k => count[k] < size[k])
                .OrderByDescending(k => nodeLoad[k] + load[a] <= cap[k])
                .ThenByDescending(k => Enumerable.Range(0, n).Where(b => part[b] == k).Sum(b => w[a, b]))
                .ThenBy(k => nodeLoad[k])
                .ThenBy(k => nodes[k], StringComparer.Ordinal)
                .First();
            part[a] = best;
            count[best]++;
            nodeLoad[best] += load[a];
        }

        // Kernighan–Lin refinement: the best improving swap until none improves.
        for (var round = 0; round < 4 * n * n; round++)
        {
            var conn = new long[n, nodes.Length];   // conn[a, k] = Σ w(a, b) over b on node k
            for (var a = 0; a < n; a++)
                for (var b = 0; b < n; b++)
                    if (a != b)
                        conn[a, part[b]] += w[a, b];
            long bestGain = 0;
            (int A, int B)? swap = null;
            for (var a = 0; a < n; a++)
                for (var b = a + 1; b < n; b++)
                {
                    int ka = part[a], kb = part[b];
                    if (ka == kb)
                        continue;
                    var gain = conn[a, kb] - conn[a, ka] + conn[b, ka] - conn[b, kb] - 2 * w[a, b];
                    if (gain <= bestGain)
                        continue;
                    double la = nodeLoad[ka] - load[a] + load[b], lb = nodeLoad[kb] - load[b] + load[a];
                    bool fits = (la <= cap[ka] || la <= nodeLoad[ka]) && (lb <= cap[kb] || lb <= nodeLoad[kb]);
                    if (!fits)
                        continue;
                    bestGain = gain;
                    swap = (a, b);
                }
            if (swap is not { } s)
                break;
            int na = part[s.A], nb = part[s.B];
            nodeLoad[na] += load[s.B] - load[s.A];
            nodeLoad[nb] += load[s.A] - load[s.B];
            (part[s.A], part[s.B]) = (nb, na);
        }
        return Enumerable.Range(0, n).Select(a => (ids[a], nodes[part[a]]));
    }
}
