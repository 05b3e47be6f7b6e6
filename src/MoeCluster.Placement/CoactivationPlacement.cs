namespace MoeCluster.Placement;

/// <summary>
/// Places experts that the same tokens choose together on the same node (Speculative MoE's expert grouping), so a
/// router that sends each token's row once per node (DeepSpeed-MoE groups traffic per node) sends fewer rows.
/// </summary>
/// <remarks>
/// <para>A token's hidden state returns to its router after every MoE layer, so only co-activation <i>within</i> a
/// layer decides how many nodes a token's rows visit; each layer is partitioned on its own, in layer order. The
/// co-activation graph of a layer has the layer's experts as vertices and, as edge weights, how many tokens of a
/// routing profile chose both. The plan is a load-balanced min-cut of that graph:</para>
/// <list type="number">
/// <item>Greedy start: experts in order of co-activation strength (the sum of their edge weights), each to the node
/// whose experts it co-activates with most, among those within their limits (below).</item>
/// <item>Refinement (Kernighan–Lin): the best single move of an expert to another node, or swap of two experts
/// between nodes, while one cuts fewer co-activations and keeps the limits.</item>
/// </list>
/// <para>The limits keep the work spread. A node's share of a layer's tokens may not exceed (1 + <c>loadSlack</c>)
/// ÷ nodes (or the load of the layer's hottest expert), so grouping never piles a layer's work on one node: at the
/// default 0.25 on three nodes a node takes at most 42 % of a layer, which with even loads is the even plan's
/// 3 / 3 / 2 split; a slack of 1 allows a layer on two of three nodes, 2 a layer on one. A node's experts over all
/// layers stay within (1 + <c>loadSlack</c>) × what <see cref="ExpertPlacement.Place"/> (the even plan) gives it, and
/// within its slots. Deterministic: the same inputs give the same plan. Redundant replicas are not placed here
/// (<see cref="ReplicationPlanner"/> adds them).</para>
/// </remarks>
public static class CoactivationPlacement
{
    /// <summary>Where the nodes' co-activation placement puts each expert's primary.</summary>
    /// <param name="experts">The logical experts to place.</param>
    /// <param name="nodes">Expert nodes and their slot capacities.</param>
    /// <param name="profile">Routing statistics (co-activation and load) of the model on representative text.</param>
    /// <param name="loadSlack">How far above an even share of a layer's tokens, and of the experts, a node may go (0.25 = 25 %).</param>
    /// <exception cref="PlacementException">Capacity is short (as in <see cref="ExpertPlacement.Place"/>), or the profile
    /// was taken on a model with fewer experts per layer than the experts listed.</exception>
    public static PlacementPlan Place(IReadOnlyList<ExpertId> experts, IReadOnlyList<NodeCapacity> nodes, RoutingSnapshot profile, double loadSlack = 0.25)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentOutOfRangeException.ThrowIfNegative(loadSlack);
        var even = ExpertPlacement.Place(experts, nodes);
        var maxExpert = experts.Count == 0 ? -1 : experts.Max(e => e.Expert);
        if (maxExpert >= profile.Experts)
            throw new PlacementException(
                $"The routing profile counts {profile.Experts} experts per layer but the model has expert {maxExpert}; take the profile on this model (moecluster routing-stats --model DIR).");
        var slots = NodeCapacity.ByAddress(nodes);
        var state = new Totals(slots.Where(p => p.Value > 0).Select(p => p.Key).Order(StringComparer.Ordinal).ToArray());
        foreach (var (node, i) in state.Nodes.Select((n, i) => (n, i)))
        {
            int evenTotal = even.PrimariesOn(node).Count;
            state.Cap[i] = Math.Min(slots[node], Math.Max(evenTotal, (int)Math.Floor(evenTotal * (1 + loadSlack))));
            state.Slots[i] = slots[node];
        }
        var nodeOf = new Dictionary<ExpertId, string>();
        foreach (var layer in experts.Select(e => e.Layer).Distinct().Order())
        {
            var ids = experts.Where(e => e.Layer == layer).Order().ToList();
            var stats = profile.Layer(layer);
            if (stats is null || stats.Tokens == 0)
            {
                foreach (var e in ids)
                {
                    nodeOf[e] = even.NodeOf(e);   // nothing known about this layer: even is as good as any
                    state.Count[Array.IndexOf(state.Nodes, nodeOf[e])]++;
                }
                continue;
            }
            foreach (var (e, node) in Partition(ids, stats, loadSlack, state))
                nodeOf[e] = node;
        }
        return new PlacementPlan(nodeOf.ToDictionary(p => p.Key, p => (IReadOnlyList<string>)[p.Value]));
    }

    /// <summary>Experts per node so far, and the limits: slack over the even plan's total, and slots.</summary>
    private sealed class Totals(string[] nodes)
    {
        public readonly string[] Nodes = nodes;
        public readonly int[] Count = new int[nodes.Length], Cap = new int[nodes.Length], Slots = new int[nodes.Length];
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

    private static IEnumerable<(ExpertId, string)> Partition(List<ExpertId> ids, LayerRoutingStatistics stats, double slack, Totals totals)
    {
        int n = ids.Count, N = totals.Nodes.Length;
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
        double cap = Math.Max(load.DefaultIfEmpty(0).Max(), (1 + slack) * load.Sum() / N);
        var part = Enumerable.Repeat(-1, n).ToArray();
        var nodeLoad = new double[N];
        bool Room(int k, int limit) => totals.Count[k] < limit;

        // Greedy start.
        foreach (var a in Enumerable.Range(0, n).OrderByDescending(a => strength[a]).ThenBy(a => a))
        {
            var open = Enumerable.Range(0, N).Where(k => Room(k, totals.Cap[k])).ToList();
            if (open.Count == 0)
                open = Enumerable.Range(0, N).Where(k => Room(k, totals.Slots[k])).ToList();
            if (open.Count == 0)
                throw new PlacementException($"No node has a free slot for {ids[a]}; add slots (more nodes or larger capacities).");
            var best = open
                .OrderByDescending(k => nodeLoad[k] + load[a] <= cap)
                .ThenByDescending(k => Enumerable.Range(0, n).Where(b => part[b] == k).Sum(b => w[a, b]))
                .ThenBy(k => totals.Count[k])
                .ThenBy(k => nodeLoad[k])
                .ThenBy(k => totals.Nodes[k], StringComparer.Ordinal)
                .First();
            part[a] = best;
            totals.Count[best]++;
            nodeLoad[best] += load[a];
        }

        // Kernighan–Lin refinement: the best improving move or swap until none improves.
        for (var round = 0; round < 4 * n * n; round++)
        {
            var conn = new long[n, N];   // conn[a, k] = Σ w(a, b) over b on node k
            for (var a = 0; a < n; a++)
                for (var b = 0; b < n; b++)
                    if (a != b)
                        conn[a, part[b]] += w[a, b];
            long bestGain = 0;
            (int A, int B, int To)? step = null;
            bool Fits(int k, double newLoad) => newLoad <= cap || newLoad <= nodeLoad[k];
            for (var a = 0; a < n; a++)
            {
                int ka = part[a];
                for (var k = 0; k < N; k++)
                {
                    if (k == ka || !Room(k, totals.Cap[k]))
                        continue;
                    var gain = conn[a, k] - conn[a, ka];
                    if (gain > bestGain && Fits(k, nodeLoad[k] + load[a]))
                    {
                        bestGain = gain;
                        step = (a, -1, k);
                    }
                }
                for (var b = a + 1; b < n; b++)
                {
                    int kb = part[b];
                    if (ka == kb)
                        continue;
                    var gain = conn[a, kb] - conn[a, ka] + conn[b, ka] - conn[b, kb] - 2 * w[a, b];
                    if (gain > bestGain && Fits(ka, nodeLoad[ka] - load[a] + load[b]) && Fits(kb, nodeLoad[kb] - load[b] + load[a]))
                    {
                        bestGain = gain;
                        step = (a, b, kb);
                    }
                }
            }
            if (step is not { } s)
                break;
            int from = part[s.A];
            if (s.B < 0)
            {
                totals.Count[from]--;
                totals.Count[s.To]++;
                nodeLoad[from] -= load[s.A];
                nodeLoad[s.To] += load[s.A];
                part[s.A] = s.To;
            }
            else
            {
                nodeLoad[from] += load[s.B] - load[s.A];
                nodeLoad[s.To] += load[s.A] - load[s.B];
                (part[s.A], part[s.B]) = (s.To, from);
            }
        }
        return Enumerable.Range(0, n).Select(a => (ids[a], totals.Nodes[part[a]]));
    }
}
