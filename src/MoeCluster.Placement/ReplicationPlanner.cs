using System.Globalization;

namespace MoeCluster.Placement;

/// <summary>
/// Adds redundant replicas of hot experts and retires them when load falls, from a load window: a pure function in
/// the spirit of vLLM's <c>rebalance_experts</c> and DeepSeek's EPLB, with hysteresis so replicas do not flap.
/// </summary>
/// <remarks>
/// For each layer the per-replica target τ is the layer's tokens ÷ its logical experts (what each would carry under
/// perfectly even routing). An expert with t tokens and r replicas carries t/(rτ) of the target per replica:
/// <list type="bullet">
/// <item>above <see cref="ReplicationOptions.AddThreshold"/>: grow to ⌈t/τ⌉ replicas (capped by
/// <see cref="ReplicationOptions.MaxReplicasPerExpert"/>, the node count and free slots) — so uniform load keeps 1 each,
/// and an expert taking half of an 8-expert layer (t = 4τ) gets 4, or 3 on 3 nodes;</item>
/// <item>below <see cref="ReplicationOptions.RetireThreshold"/>: shrink to ⌈t/τ⌉ (at least 1);</item>
/// <item>otherwise leave it, and never change one expert twice within <see cref="ReplicationOptions.MinStepsBetweenChanges"/>.</item>
/// </list>
/// Primaries never move here (that is <see cref="ExpertPlacement"/>'s job). Free slots go first to the expert with the
/// most tokens per replica, one replica at a time, as EPLB's greedy does; each new replica goes to the node receiving
/// fewest tokens of that layer (then fewest tokens overall, then fewest slots used) that holds no replica of the expert.
/// </remarks>
public static class ReplicationPlanner
{
    /// <summary>Decides which replicas to add and retire given the load over the window.</summary>
    /// <param name="load">Tokens per expert over the window.</param>
    /// <param name="current">The current plan; every replica must be on one of <paramref name="nodes"/>.</param>
    /// <param name="nodes">The expert nodes and their slot capacities.</param>
    /// <param name="options">Thresholds and limits.</param>
    /// <param name="history">When each expert last changed (from the previous decision); null when none has.</param>
    /// <exception cref="PlacementException">The plan places a replica on a node not in <paramref name="nodes"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options are out of range.</exception>
    public static ReplicationDecision Plan(LoadWindow load, PlacementPlan current, IReadOnlyList<NodeCapacity> nodes,
        ReplicationOptions options, ReplicationHistory? history = null)
    {
        ArgumentNullException.ThrowIfNull(load);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        history ??= ReplicationHistory.Empty;
        var capacities = NodeCapacity.ByAddress(nodes);
        foreach (var (expert, replicas) in current.Replicas)
            foreach (var node in replicas.Where(n => !capacities.ContainsKey(n)))
                throw new PlacementException(
                    $"The plan puts a replica of {expert} on '{node}', which is not among the {capacities.Count} nodes given; "
                    + "re-place primaries for the current nodes with ExpertPlacement.Place first.");

        var total = current.Experts.Sum(load.TokensOf);
        if (total < options.MinTokensInWindow)
            return new ReplicationDecision(current, [], history,
                [Invariant($"No replication decision: the window holds {total} tokens over {load.Steps} steps, below MinTokensInWindow {options.MinTokensInWindow}.")]);

        var state = new ReplicaLoad(current, load, capacities);
        var maxReplicas = Math.Min(options.MaxReplicasPerExpert, capacities.Count);
        var notes = new List<string>();
        var retires = new List<(ExpertId Expert, int Desired, bool Forced)>();
        var wants = new SortedDictionary<ExpertId, int>();
        foreach (var expert in current.Experts)
        {
            var replicas = state.Count(expert);
            var target = state.TargetPerReplica(expert.Layer);
            if (replicas > maxReplicas)
            {
                retires.Add((expert, maxReplicas, true)); // limits shrank: not a load decision, so no hysteresis
                continue;
            }
            if (target <= 0)
                continue;
            var needed = (int)Math.Ceiling(load.TokensOf(expert) / target); // replicas that bring it to <= 1× target
            var perReplica = load.TokensOf(expert) / (replicas * target);
            int desired;
            if (replicas > 1 && perReplica < options.RetireThreshold)
                desired = Math.Clamp(needed, 1, replicas - 1);
            else if (replicas < maxReplicas && perReplica > options.AddThreshold)
                desired = Math.Min(needed, maxReplicas);
            else
                continue;

            var last = history.LastChangeOf(expert);
            if (last is { } step && load.LastStep - step < options.MinStepsBetweenChanges)
            {
                notes.Add(Invariant($"{expert} would go from {replicas} to {desired} replicas ({perReplica:0.00}x the per-replica target) but changed at step {step}, {load.LastStep - step} steps ago; MinStepsBetweenChanges is {options.MinStepsBetweenChanges}."));
                continue;
            }
            if (desired < replicas)
                retires.Add((expert, desired, false));
            else
                wants[expert] = desired;
        }

        var changes = new List<ReplicationChange>();
        foreach (var (expert, desired, forced) in retires)
            while (state.Count(expert) > desired)
            {
                var before = state.Count(expert);
                var node = state.Retire(expert);
                var why = forced
                    ? Invariant($"{expert} has {Replicas(before)}, more than the limit of {maxReplicas} (MaxReplicasPerExpert {options.MaxReplicasPerExpert}, {capacities.Count} nodes)")
                    : Invariant($"{Share(expert, load, state)}, {load.TokensOf(expert) / (before * state.TargetPerReplica(expert.Layer)):0.00}x the per-replica target of {state.TargetPerReplica(expert.Layer):0} on each of {before} replicas (retires below {options.RetireThreshold}x)");
                changes.Add(new ReplicationChange(expert, ChangeKind.Retire, node, Invariant($"{why}; {Replicas(before)} -> {before - 1}, retired from {node}")));
            }

        while (wants.Count > 0)
        {
            // Hottest per replica first, so scarce slots go where they relieve most (EPLB's greedy).
            var expert = wants.Keys.OrderByDescending(e => load.TokensOf(e) / (double)state.Count(e)).First();
            var before = state.Count(expert);
            var node = state.BestNodeFor(expert);
            if (node is null)
            {
                notes.Add(Invariant($"{expert} wants {wants[expert]} replicas but has {Replicas(before)}: every node that lacks one is full ({capacities.Values.Sum()} slots in all)."));
                wants.Remove(expert);
                continue;
            }
            state.Add(expert, node);
            var target = state.TargetPerReplica(expert.Layer);
            changes.Add(new ReplicationChange(expert, ChangeKind.Add, node,
                Invariant($"{Share(expert, load, state)}, {load.TokensOf(expert) / target:0.0}x the per-replica target of {target:0} (adds above {options.AddThreshold}x per replica); {Replicas(before)} -> {before + 1} on {node}")));
            if (state.Count(expert) >= wants[expert])
                wants.Remove(expert);
        }

        var nextHistory = history.With(changes.Select(c => c.Expert).Distinct(), load.LastStep);
        return new ReplicationDecision(state.ToPlan(), changes, nextHistory, notes);
    }

    /// <summary>"L0.E3 received 52% of layer 0 tokens (4120 of 7900) over 200 steps".</summary>
    private static string Share(ExpertId expert, LoadWindow load, ReplicaLoad state)
    {
        var tokens = load.TokensOf(expert);
        var layerTokens = state.LayerTokens(expert.Layer);
        var percent = 100.0 * tokens / layerTokens;
        var shown = percent is > 0 and < 1 ? "<1" : Invariant($"{percent:0}"); // "0%" would hide a trickle
        return Invariant($"{expert} received {shown}% of layer {expert.Layer} tokens ({tokens} of {layerTokens}) over {load.Steps} steps");
    }

    private static string Replicas(int count) => count == 1 ? "1 replica" : Invariant($"{count} replicas");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
