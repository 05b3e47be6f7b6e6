namespace MoeCluster.Placement;

/// <summary>
/// Places each logical expert's primary replica on a node: evenly, spreading each layer over many nodes, and — given
/// the current plan — moving as few experts as possible when nodes join or leave.
/// </summary>
public static class ExpertPlacement
{
    /// <summary>
    /// Gives every expert in <paramref name="experts"/> exactly one primary node.
    /// <list type="bullet">
    /// <item>Primaries per node differ by at most 1 where capacities allow (water-filling; a small node is filled).</item>
    /// <item>Each layer's experts go to the nodes holding fewest of that layer, so one layer's tokens reach many nodes.</item>
    /// <item>With <paramref name="current"/>, an expert stays where it is when its node is still present and not over
    /// its fair share; only experts on departed nodes, experts new to the list, and the surplus of over-full nodes move.
    /// An expert whose primary left is promoted onto a surviving redundant replica when that node has room.</item>
    /// <item>Redundant replicas of <paramref name="current"/> are kept where their node is present and has a free slot
    /// after primaries; others are dropped (replication re-adds them from the load window).</item>
    /// </list>
    /// Deterministic: the same inputs give the same plan (experts visited by id, ties broken by address).
    /// </summary>
    /// <exception cref="PlacementException">Total capacity is below the number of experts, or the inputs repeat an expert or node.</exception>
    public static PlacementPlan Place(IReadOnlyList<ExpertId> experts, IReadOnlyList<NodeCapacity> nodes, PlacementPlan? current = null)
    {
        ArgumentNullException.ThrowIfNull(experts);
        var capacities = NodeCapacity.ByAddress(nodes);
        var sorted = experts.Order().ToList();
        for (var i = 1; i < sorted.Count; i++)
            if (sorted[i] == sorted[i - 1])
                throw new PlacementException($"Expert {sorted[i]} is listed twice; each logical expert is placed once.");

        long totalSlots = capacities.Values.Sum(c => (long)c);
        if (totalSlots < sorted.Count)
            throw new PlacementException(
                $"Cannot place {sorted.Count} experts on {capacities.Count} nodes with {totalSlots} expert slots in total; "
                + $"add {sorted.Count - totalSlots} slots (more nodes or larger capacities).");

        var state = new Assignment(capacities);
        KeepCurrent(sorted, current, state);
        var targets = FairShare.Targets(sorted.Count, capacities, node => state.Count(node));
        Evict(state, targets);

        foreach (var expert in sorted.Where(e => !state.Has(e)))
            state.Add(expert, ChooseNode(expert, state, targets, current));

        return Build(sorted, state, capacities, current);
    }

    /// <summary>Experts whose current primary node is still present stay there (before evening out).</summary>
    private static void KeepCurrent(List<ExpertId> sorted, PlacementPlan? current, Assignment state)
    {
        if (current is null)
            return;
        foreach (var expert in sorted)
            if (current.Replicas.TryGetValue(expert, out var replicas) && state.IsNode(replicas[0]))
                state.Add(expert, replicas[0]);
    }

    /// <summary>
    /// Removes the surplus of every node over its target, one expert at a time round the nodes, taking from the layer
    /// the node holds most of (and among those, the layer evicted least so far, so the receivers get a mix of layers).
    /// </summary>
    private static void Evict(Assignment state, Dictionary<string, int> targets)
    {
        var evictedPerLayer = new Dictionary<int, int>();
        bool any;
        do
        {
            any = false;
            foreach (var node in targets.Keys.Order(StringComparer.Ordinal))
            {
                if (state.Count(node) <= targets[node])
                    continue;
                var victim = state.On(node)
                    .OrderByDescending(e => state.LayerCount(node, e.Layer))
                    .ThenBy(e => evictedPerLayer.GetValueOrDefault(e.Layer))
                    .ThenByDescending(e => e)
                    .First();
                state.Remove(victim);
                evictedPerLayer[victim.Layer] = evictedPerLayer.GetValueOrDefault(victim.Layer) + 1;
                any = true;
            }
        } while (any);
    }

    /// <summary>
    /// The node with room for one more primary that is best for <paramref name="expert"/>: one already holding a
    /// surviving replica of it (no weights to load), then the fewest experts of its layer, then the most room, then address.
    /// </summary>
    private static string ChooseNode(ExpertId expert, Assignment state, Dictionary<string, int> targets, PlacementPlan? current)
    {
        IReadOnlyList<string> survivors = current is not null && current.Replicas.TryGetValue(expert, out var r) ? r : [];
        return targets.Keys
            .Where(node => state.Count(node) < targets[node])
            .OrderByDescending(node => survivors.Contains(node, StringComparer.Ordinal))
            .ThenBy(node => state.LayerCount(node, expert.Layer))
            .ThenByDescending(node => targets[node] - state.Count(node))
            .ThenBy(node => node, StringComparer.Ordinal)
            .First(); // targets sum to the expert count, so a node with room exists while experts remain
    }

    /// <summary>Primaries first; then current redundant replicas that still fit, in expert order.</summary>
    private static PlacementPlan Build(List<ExpertId> sorted, Assignment state, Dictionary<string, int> capacities,
        PlacementPlan? current)
    {
        var used = capacities.Keys.ToDictionary(n => n, state.Count, StringComparer.Ordinal);
        var replicas = new Dictionary<ExpertId, IReadOnlyList<string>>();
        foreach (var expert in sorted)
        {
            var primary = state.NodeOf(expert);
            var list = new List<string> { primary };
            if (current is not null && current.Replicas.TryGetValue(expert, out var before))
            {
                // The old primary's node is not kept as a redundant copy (it was evicted to even out); a promoted
                // replica is already the primary, counted in `used`; other survivors need a free slot.
                foreach (var node in before.Skip(1))
                {
                    if (!capacities.ContainsKey(node) || list.Contains(node, StringComparer.Ordinal) || used[node] >= capacities[node])
                        continue;
                    list.Add(node);
                    used[node]++;
                }
            }
            replicas[expert] = list;
        }
        return new PlacementPlan(replicas);
    }

    /// <summary>Mutable primary assignment with per-node and per-(node, layer) counts.</summary>
    private sealed class Assignment(Dictionary<string, int> capacities)
    {
        private readonly Dictionary<ExpertId, string> _nodeOf = [];
        private readonly Dictionary<string, SortedSet<ExpertId>> _on =
            capacities.Keys.ToDictionary(n => n, _ => new SortedSet<ExpertId>(), StringComparer.Ordinal);
        private readonly Dictionary<(string Node, int Layer), int> _layerCounts = [];

        public bool IsNode(string node) => _on.ContainsKey(node);
        public bool Has(ExpertId expert) => _nodeOf.ContainsKey(expert);
        public string NodeOf(ExpertId expert) => _nodeOf[expert];
        public int Count(string node) => _on[node].Count;
        public IEnumerable<ExpertId> On(string node) => _on[node];
        public int LayerCount(string node, int layer) => _layerCounts.GetValueOrDefault((node, layer));

        public void Add(ExpertId expert, string node)
        {
            _nodeOf.Add(expert, node);
            _on[node].Add(expert);
            _layerCounts[(node, expert.Layer)] = LayerCount(node, expert.Layer) + 1;
        }

        public void Remove(ExpertId expert)
        {
            var node = _nodeOf[expert];
            _nodeOf.Remove(expert);
            _on[node].Remove(expert);
            _layerCounts[(node, expert.Layer)]--;
        }
    }
}
