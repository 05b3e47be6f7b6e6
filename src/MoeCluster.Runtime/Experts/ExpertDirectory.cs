using System.Collections.Immutable;

namespace MoeCluster.Runtime.Experts;

/// <summary>Where each expert lives, as last reported by the shard coordinator: entity id → node address.
/// Shared read-mostly by the routers of one node; replaced wholesale by <see cref="PlacementWatcherActor"/>.</summary>
public sealed class ExpertDirectory
{
    volatile ImmutableDictionary<string, string> placement = ImmutableDictionary<string, string>.Empty;

    public ImmutableDictionary<string, string> Placement => placement;

    public string? NodeOf(string expertId) => placement.TryGetValue(expertId, out var n) ? n : null;

    public void Replace(ImmutableDictionary<string, string> next) => placement = next;

    /// <summary>Forget a node at once (it left or is unreachable) so routers stop dispatching to it.</summary>
    public void RemoveNode(string node) => placement = placement.RemoveRange(placement.Where(p => p.Value == node).Select(p => p.Key).ToList());
}
