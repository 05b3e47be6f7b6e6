using System.Collections.Immutable;

namespace MoeCluster.Placement;

/// <summary>
/// Where every replica of every logical expert lives: for each expert, the node of each replica, primary first.
/// Immutable; two plans are equal when they hold the same replicas on the same nodes in the same order.
/// </summary>
public sealed record PlacementPlan
{
    private readonly ImmutableSortedDictionary<ExpertId, IReadOnlyList<string>> _replicas;

    /// <summary>Creates a plan from each expert's replica nodes (primary first); the lists are copied.</summary>
    /// <exception cref="PlacementException">An expert has no replica, an empty node address, or two replicas on one node.</exception>
    public PlacementPlan(IReadOnlyDictionary<ExpertId, IReadOnlyList<string>> replicas)
    {
        ArgumentNullException.ThrowIfNull(replicas);
        var builder = ImmutableSortedDictionary.CreateBuilder<ExpertId, IReadOnlyList<string>>();
        foreach (var (expert, nodes) in replicas)
        {
            if (nodes is null || nodes.Count == 0)
                throw new PlacementException($"Expert {expert} has no replica; every expert in a plan needs a primary node.");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var node in nodes)
            {
                if (string.IsNullOrWhiteSpace(node))
                    throw new PlacementException($"Expert {expert} has a replica with an empty node address.");
                if (!seen.Add(node))
                    throw new PlacementException($"Expert {expert} has two replicas on node '{node}'; a node holds at most one replica of an expert.");
            }
            builder.Add(expert, nodes.ToImmutableArray());
        }
        _replicas = builder.ToImmutable();
    }

    /// <summary>A plan with no experts.</summary>
    public static PlacementPlan Empty { get; } = new(ImmutableDictionary<ExpertId, IReadOnlyList<string>>.Empty);

    /// <summary>The node of each replica of each expert, primary first; iterates in expert order.</summary>
    public IReadOnlyDictionary<ExpertId, IReadOnlyList<string>> Replicas => _replicas;

    /// <summary>Every expert in the plan, in order.</summary>
    public IEnumerable<ExpertId> Experts => _replicas.Keys;

    /// <summary>Every node holding at least one replica, in ordinal order.</summary>
    public IReadOnlyList<string> Nodes =>
        _replicas.Values.SelectMany(n => n).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>The node of the expert's primary replica.</summary>
    /// <exception cref="KeyNotFoundException">The expert is not in the plan.</exception>
    public string NodeOf(ExpertId expert) => ReplicasOf(expert)[0];

    /// <summary>The nodes of the expert's replicas, primary first.</summary>
    /// <exception cref="KeyNotFoundException">The expert is not in the plan.</exception>
    public IReadOnlyList<string> ReplicasOf(ExpertId expert) =>
        _replicas.TryGetValue(expert, out var nodes)
            ? nodes
            : throw new KeyNotFoundException($"Expert {expert} is not in this plan of {_replicas.Count} experts.");

    /// <summary>The experts with any replica (primary or redundant) on <paramref name="node"/>, in order.</summary>
    public IReadOnlyList<ExpertId> ExpertsOn(string node) =>
        _replicas.Where(kv => kv.Value.Contains(node, StringComparer.Ordinal)).Select(kv => kv.Key).ToList();

    /// <summary>The experts whose primary is on <paramref name="node"/>, in order.</summary>
    public IReadOnlyList<ExpertId> PrimariesOn(string node) =>
        _replicas.Where(kv => string.Equals(kv.Value[0], node, StringComparison.Ordinal)).Select(kv => kv.Key).ToList();

    /// <summary>Slots in use on <paramref name="node"/>: its replicas, primary or redundant.</summary>
    public int SlotsUsed(string node) => _replicas.Values.Count(n => n.Contains(node, StringComparer.Ordinal));

    /// <summary>
    /// The primaries that change node from <paramref name="from"/> to <paramref name="to"/>, in expert order.
    /// An expert new in <paramref name="to"/> moves from null; experts dropped from <paramref name="to"/> are not moves.
    /// Redundant replicas are reported by <see cref="ReplicationPlanner"/> as <see cref="ReplicationChange"/>s instead.
    /// </summary>
    public static IReadOnlyList<ExpertMove> Moves(PlacementPlan? from, PlacementPlan to)
    {
        ArgumentNullException.ThrowIfNull(to);
        var moves = new List<ExpertMove>();
        foreach (var (expert, nodes) in to._replicas)
        {
            string? before = from is not null && from._replicas.TryGetValue(expert, out var old) ? old[0] : null;
            if (!string.Equals(before, nodes[0], StringComparison.Ordinal))
                moves.Add(new ExpertMove(expert, before, nodes[0]));
        }
        return moves;
    }

    /// <inheritdoc/>
    public bool Equals(PlacementPlan? other) =>
        other is not null
        && _replicas.Count == other._replicas.Count
        && _replicas.All(kv => other._replicas.TryGetValue(kv.Key, out var nodes) && nodes.SequenceEqual(kv.Value, StringComparer.Ordinal));

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var (expert, nodes) in _replicas)
        {
            hash.Add(expert);
            foreach (var node in nodes)
                hash.Add(node, StringComparer.Ordinal);
        }
        return hash.ToHashCode();
    }

    /// <summary>One line per expert, e.g. <c>L0.E3: node-a, node-b</c>.</summary>
    public override string ToString() =>
        string.Join(Environment.NewLine, _replicas.Select(kv => $"{kv.Key}: {string.Join(", ", kv.Value)}"));
}
