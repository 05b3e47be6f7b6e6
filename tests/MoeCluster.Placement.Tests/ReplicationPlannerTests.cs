namespace MoeCluster.Placement.Tests;

public class ReplicationPlannerTests
{
    private static readonly ExpertId E0 = new(0, 0);
    private static readonly ExpertId E1 = new(0, 1);
    private static readonly ExpertId E3 = new(0, 3);
    private static readonly ReplicationOptions Options = new() { MaxReplicasPerExpert = 4, MinTokensInWindow = 100, MinStepsBetweenChanges = 200 };

    /// <summary>Eight experts of layer 0 placed on the nodes by <see cref="ExpertPlacement"/>.</summary>
    private static PlacementPlan EightExperts(IReadOnlyList<NodeCapacity> nodes) => ExpertPlacement.Place(Cluster.Experts(1, 8), nodes);

    [Fact]
    public void An_expert_taking_half_a_layer_is_replicated_onto_every_one_of_three_nodes()
    {
        var nodes = Cluster.Nodes(3, 8);
        var load = Cluster.Window(0, [500, 500, 500, 3500, 500, 500, 500, 500]);

        var decision = ReplicationPlanner.Plan(load, EightExperts(nodes), nodes, Options);

        Assert.Equal(3, decision.Plan.ReplicasOf(E3).Count);
        Assert.Equal(2, decision.Changes.Count);
        Assert.All(decision.Changes, c => Assert.Equal((E3, ChangeKind.Add), (c.Expert, c.Kind)));
    }

    [Fact]
    public void Replicas_grow_in_proportion_to_load()
    {
        // τ = 8000 / 8 = 1000 tokens: 2.6τ needs 3 replicas, 1.7τ needs 2, 0.6τ..0.62τ need 1.
        var nodes = Cluster.Nodes(6, 8);
        var load = Cluster.Window(0, [2600, 1700, 620, 616, 616, 616, 616, 616]);

        var decision = ReplicationPlanner.Plan(load, EightExperts(nodes), nodes, Options);

        Assert.Equal(3, decision.Plan.ReplicasOf(E0).Count);
        Assert.Equal(2, decision.Plan.ReplicasOf(E1).Count);
        Assert.All(decision.Plan.Replicas.Skip(2), kv => Assert.Single(kv.Value));
    }

    [Fact]
    public void Uniform_load_keeps_one_replica_per_expert()
    {
        var nodes = Cluster.Nodes(3, 8);
        var plan = EightExperts(nodes);

        var decision = ReplicationPlanner.Plan(Cluster.Window(0, [1000, 1010, 990, 1000, 1005, 995, 1000, 1000]), plan, nodes, Options);

        Assert.Empty(decision.Changes);
        Assert.Equal(plan, decision.Plan);
    }

    [Fact]
    public void A_new_replica_goes_to_the_node_receiving_fewest_tokens()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-b"]), ("L0.E3", ["node-c"]));
        var load = Cluster.Window(0, [3000, 1500, 1500, 100]); // τ = 1525: only E0 (1.97τ) is hot

        var decision = ReplicationPlanner.Plan(load, plan, Cluster.Nodes(3, 4), Options);

        var change = Assert.Single(decision.Changes);
        Assert.Equal((E0, ChangeKind.Add, "node-c"), (change.Expert, change.Kind, change.Node));
    }

    [Fact]
    public void Among_equally_loaded_nodes_the_one_using_fewer_slots_is_first()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-b"]), ("L0.E3", ["node-c"]));
        var load = Cluster.Window(0, [3000, 0, 0, 0]);

        var decision = ReplicationPlanner.Plan(load, plan, Cluster.Nodes(3, 4), Options);

        Assert.Equal(["node-c", "node-b"], decision.Changes.Select(c => c.Node));
        Assert.Equal(["node-a", "node-c", "node-b"], decision.Plan.ReplicasOf(E0));
    }

    [Fact]
    public void Full_nodes_take_no_replica_and_the_shortfall_is_noted()
    {
        // node-b and node-c are full; only node-d has a free slot.
        var plan = Cluster.Plan(("L0.E0", ["node-a"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-c"]), ("L0.E3", ["node-d"]));
        List<NodeCapacity> nodes = [new("node-a", 1), new("node-b", 1), new("node-c", 1), new("node-d", 2)];
        var load = Cluster.Window(0, [4000, 0, 0, 0]);

        var decision = ReplicationPlanner.Plan(load, plan, nodes, Options);

        Assert.Equal(["node-a", "node-d"], decision.Plan.ReplicasOf(E0));
        Assert.Contains(decision.Notes, n => n.StartsWith("L0.E0 wants 4 replicas but has 2 replicas", StringComparison.Ordinal));
        Cluster.AssertValid(decision.Plan, Cluster.Experts(1, 4), nodes);
    }

    [Fact]
    public void Replicas_stop_at_MaxReplicasPerExpert()
    {
        var nodes = Cluster.Nodes(6, 8);
        var load = Cluster.Window(0, [7000, 100, 100, 100, 100, 100, 100, 400]);

        var decision = ReplicationPlanner.Plan(load, EightExperts(nodes), nodes, Options with { MaxReplicasPerExpert = 2 });

        Assert.Equal(2, decision.Plan.ReplicasOf(E0).Count);
    }

    [Fact]
    public void Replicas_are_retired_when_load_falls_and_the_primary_stays()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-b", "node-c"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-c"]));
        var load = Cluster.Window(0, [1000, 1000, 1000]);

        var decision = ReplicationPlanner.Plan(load, plan, Cluster.Nodes(3, 4), Options);

        Assert.Equal(["node-a"], decision.Plan.ReplicasOf(E0));
        Assert.Equal(2, decision.Changes.Count);
        Assert.All(decision.Changes, c => Assert.Equal(ChangeKind.Retire, c.Kind));
        Assert.Equal(["node-b", "node-c"], decision.Changes.Select(c => c.Node).Order());
        Assert.Equal(
            "L0.E0 received 33% of layer 0 tokens (1000 of 3000) over 200 steps, 0.33x the per-replica target of 1000 "
            + $"on each of 3 replicas (retires below 0.5x); 3 replicas -> 2, retired from {decision.Changes[0].Node}",
            decision.Changes[0].Reason);
    }

    [Fact]
    public void Load_hovering_around_the_add_threshold_adds_once_and_never_retires()
    {
        var nodes = Cluster.Nodes(3, 8);
        var plan = EightExperts(nodes);
        var history = ReplicationHistory.Empty;
        var changes = new List<ReplicationChange>();
        for (var round = 0; round < 20; round++)
        {
            // τ = 1000; E0 alternates 1.4τ and 1.6τ around AddThreshold 1.5.
            var hot = round % 2 == 0 ? 1400 : 1600;
            var load = Cluster.Window(0, [hot, 1000, 1000, 1000, 1000, 1000, 1000, 1000 + 1000 - hot], lastStep: 1000 * (round + 1));
            var decision = ReplicationPlanner.Plan(load, plan, nodes, Options, history);
            (plan, history) = (decision.Plan, decision.History);
            changes.AddRange(decision.Changes);
        }

        var change = Assert.Single(changes);
        Assert.Equal((E0, ChangeKind.Add), (change.Expert, change.Kind));
    }

    [Fact]
    public void Load_hovering_around_the_retire_threshold_retires_once_and_never_re_adds()
    {
        var nodes = Cluster.Nodes(3, 8);
        var plan = EightExperts(nodes);
        plan = new PlacementPlan(plan.Replicas.ToDictionary(kv => kv.Key,
            kv => kv.Key == E0 ? (IReadOnlyList<string>)[kv.Value[0], nodes.First(n => n.Address != kv.Value[0]).Address] : kv.Value));
        var history = ReplicationHistory.Empty;
        var changes = new List<ReplicationChange>();
        for (var round = 0; round < 20; round++)
        {
            // Two replicas of E0 carry 0.45τ and 0.55τ each in turn, around RetireThreshold 0.5.
            var e0 = round % 2 == 0 ? 900 : 1100;
            var load = Cluster.Window(0, [e0, 1000, 1000, 1000, 1000, 1000, 1000, 1000 + 1000 - e0], lastStep: 1000 * (round + 1));
            var decision = ReplicationPlanner.Plan(load, plan, nodes, Options, history);
            (plan, history) = (decision.Plan, decision.History);
            changes.AddRange(decision.Changes);
        }

        var change = Assert.Single(changes);
        Assert.Equal((E0, ChangeKind.Retire), (change.Expert, change.Kind));
    }

    [Fact]
    public void An_expert_changed_recently_is_not_changed_again_until_MinStepsBetweenChanges_pass()
    {
        var nodes = Cluster.Nodes(3, 8);
        var added = ReplicationPlanner.Plan(Cluster.Window(0, [3000, 1000, 1000, 1000, 1000, 1000, 1000, 0], lastStep: 100),
            EightExperts(nodes), nodes, Options);
        Assert.Equal(100, added.History.LastChangeOf(E0));
        var cold = new long[] { 100, 1000, 1000, 1000, 1000, 1000, 1000, 1000 };

        var tooSoon = ReplicationPlanner.Plan(Cluster.Window(0, cold, lastStep: 250), added.Plan, nodes, Options, added.History);
        var later = ReplicationPlanner.Plan(Cluster.Window(0, cold, lastStep: 300), added.Plan, nodes, Options, added.History);

        Assert.Empty(tooSoon.Changes);
        Assert.Contains(tooSoon.Notes, n => n.Contains("changed at step 100, 150 steps ago; MinStepsBetweenChanges is 200", StringComparison.Ordinal));
        Assert.Equal([ChangeKind.Retire, ChangeKind.Retire], later.Changes.Select(c => c.Kind));
        Assert.Single(later.Plan.ReplicasOf(E0));
        Assert.Equal(300, later.History.LastChangeOf(E0));
    }

    [Fact]
    public void Too_few_tokens_in_the_window_gives_no_decision()
    {
        var nodes = Cluster.Nodes(3, 8);
        var plan = EightExperts(nodes);

        var decision = ReplicationPlanner.Plan(Cluster.Window(0, [90, 0, 0, 0, 0, 0, 0, 0]), plan, nodes, Options);

        Assert.Empty(decision.Changes);
        Assert.Equal(plan, decision.Plan);
        Assert.Contains("90 tokens over 200 steps, below MinTokensInWindow 100", Assert.Single(decision.Notes));
    }

    [Fact]
    public void Reasons_give_the_share_tokens_steps_and_replica_counts()
    {
        var nodes = Cluster.Nodes(3, 8);
        var load = Cluster.Window(0, [540, 540, 540, 4120, 540, 540, 540, 540]);

        var decision = ReplicationPlanner.Plan(load, EightExperts(nodes), nodes, Options);

        Assert.Equal(2, decision.Changes.Count);
        var first = decision.Changes[0].Reason;
        Assert.StartsWith("L0.E3 received 52% of layer 0 tokens (4120 of 7900) over 200 steps, 4.2x the per-replica target of 988", first);
        Assert.EndsWith($"; 1 replica -> 2 on {decision.Changes[0].Node}", first);
        Assert.EndsWith($"; 2 replicas -> 3 on {decision.Changes[1].Node}", decision.Changes[1].Reason);
    }

    [Fact]
    public void Lowering_MaxReplicasPerExpert_retires_extras_at_once()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-b", "node-c"]), ("L0.E1", ["node-b"]));
        var history = new ReplicationHistory(new Dictionary<ExpertId, long> { [E0] = 199 });

        var decision = ReplicationPlanner.Plan(Cluster.Window(0, [5000, 100]), plan, Cluster.Nodes(3, 4),
            Options with { MaxReplicasPerExpert = 2 }, history);

        var change = Assert.Single(decision.Changes);
        Assert.Equal(ChangeKind.Retire, change.Kind);
        Assert.Contains("more than the limit of 2", change.Reason);
    }

    [Fact]
    public void A_plan_on_an_unknown_node_is_rejected()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-z"]));

        var error = Assert.Throws<PlacementException>(() => ReplicationPlanner.Plan(Cluster.Window(0, [5000]), plan, Cluster.Nodes(2, 4), Options));

        Assert.Contains("'node-z'", error.Message);
    }

    [Fact]
    public void A_retire_threshold_that_could_undo_an_add_is_rejected()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ReplicationPlanner.Plan(LoadWindow.Empty, PlacementPlan.Empty, [], Options with { RetireThreshold = 0.7 }));

        Assert.Equal(nameof(ReplicationOptions.RetireThreshold), error.ParamName);
    }
}
