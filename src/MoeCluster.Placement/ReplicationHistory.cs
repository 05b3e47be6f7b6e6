using System.Collections.Immutable;

namespace MoeCluster.Placement;

/// <summary>
/// The step at which each expert's replicas last changed, so <see cref="ReplicationPlanner"/> stays a pure function
/// and still enforces <see cref="ReplicationOptions.MinStepsBetweenChanges"/>. Pass each decision's history to the next plan.
/// </summary>
public sealed record ReplicationHistory
{
    private readonly ImmutableSortedDictionary<ExpertId, long> _lastChanged;

    /// <summary>Creates a history from the last change step per expert.</summary>
    public ReplicationHistory(IReadOnlyDictionary<ExpertId, long> lastChanged)
    {
        ArgumentNullException.ThrowIfNull(lastChanged);
        _lastChanged = lastChanged.ToImmutableSortedDictionary();
    }

    /// <summary>No expert has changed yet.</summary>
    public static ReplicationHistory Empty { get; } = new(ImmutableDictionary<ExpertId, long>.Empty);

    /// <summary>The step at which each expert's replicas last changed.</summary>
    public IReadOnlyDictionary<ExpertId, long> LastChanged => _lastChanged;

    /// <summary>The step <paramref name="expert"/> last changed at, or null if never.</summary>
    public long? LastChangeOf(ExpertId expert) => _lastChanged.TryGetValue(expert, out var step) ? step : null;

    /// <summary>This history with <paramref name="experts"/> marked as changed at <paramref name="step"/>.</summary>
    public ReplicationHistory With(IEnumerable<ExpertId> experts, long step) =>
        new(experts.Aggregate(_lastChanged, (map, e) => map.SetItem(e, step)));

    /// <inheritdoc/>
    public bool Equals(ReplicationHistory? other) =>
        other is not null && _lastChanged.Count == other._lastChanged.Count
        && _lastChanged.All(kv => other._lastChanged.TryGetValue(kv.Key, out var s) && s == kv.Value);

    /// <inheritdoc/>
    public override int GetHashCode() => _lastChanged.Count;
}
