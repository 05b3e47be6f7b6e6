using System.Collections.Immutable;

namespace MoeCluster.Runtime.Experts;

/// <summary>Where each expert lives, as routers of one node see it: the primary (the sharding entity) as last reported
/// by the shard coordinator, replaced wholesale by <see cref="PlacementWatcherActor"/>; and the redundant replicas of
/// hot experts, replaced wholesale by the replication coordinator. Shared read-mostly by the routers of one node.</summary>
public sealed class ExpertDirectory
{
    volatile ImmutableDictionary<string, string> placement = ImmutableDictionary<string, string>.Empty;
    volatile ImmutableDictionary<string, ImmutableArray<string>> redundant = ImmutableDictionary<string, ImmutableArray<string>>.Empty;

    /// <summary>Entity id → node of the primary.</summary>
    public ImmutableDictionary<string, string> Placement => placement;

    /// <summary>Entity id → nodes of its redundant replicas (primary not included); experts absent have none.</summary>
    public ImmutableDictionary<string, ImmutableArray<string>> RedundantReplicas => redundant;

    public string? NodeOf(string expertId) => placement.TryGetValue(expertId, out var n) ? n : null;

    /// <summary>The nodes that hold a loaded copy of the expert, primary first, then redundant replicas in the order the
    /// coordinator added them; empty while the primary's node is unknown (routers then go through the shard region).</summary>
    public IReadOnlyList<string> ReplicasOf(string expertId)
    {
        if (!placement.TryGetValue(expertId, out var primary)) return [];
        if (!redundant.TryGetValue(expertId, out var copies) || copies.IsEmpty) return [primary];
        var nodes = new List<string>(copies.Length + 1) { primary };
        foreach (var n in copies) if (n != primary) nodes.Add(n);
        return nodes;
    }

    public void Replace(ImmutableDictionary<string, string> next) => placement = next;

    /// <summary>The coordinator's replica sets (entity id → redundant replica nodes), replacing the previous ones.</summary>
    public void ReplaceReplicas(IReadOnlyDictionary<string, string[]> next) =>
        redundant = next.Where(p => p.Value.Length > 0).ToImmutableDictionary(p => p.Key, p => p.Value.ToImmutableArray());

    /// <summary>Forget a node at once (it left or is unreachable) so routers stop dispatching to it, as primary or replica.</summary>
    public void RemoveNode(string node)
    {
        placement = placement.RemoveRange(placement.Where(p => p.Value == node).Select(p => p.Key).ToList());
        if (redundant.Values.Any(r => r.Contains(node)))
            redundant = redundant.Select(p => KeyValuePair.Create(p.Key, p.Value.Remove(node)))
                .Where(p => !p.Value.IsEmpty).ToImmutableDictionary();
    }
}
