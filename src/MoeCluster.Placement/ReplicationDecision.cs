namespace MoeCluster.Placement;

/// <summary>
/// What <see cref="ReplicationPlanner.Plan"/> decided: the new plan, the replicas to add and retire (retires first,
/// then adds, in the order to apply them), the history to pass to the next plan, and notes on what was wanted but not
/// done (deferred by hysteresis, no free slot, too few tokens).
/// </summary>
public sealed record ReplicationDecision(
    PlacementPlan Plan,
    IReadOnlyList<ReplicationChange> Changes,
    ReplicationHistory History,
    IReadOnlyList<string> Notes);
