namespace MoeCluster.Placement.Tests;

/// <summary>Property-style checks: random clusters from fixed seeds, invariants that must hold for every one.</summary>
public class PlacementInvariantTests
{
    private static readonly int[] Seeds = [.. Enumerable.Range(1, 40)];

    private static (List<ExpertId> Experts, List<NodeCapacity> Nodes) RandomCluster(Random random, bool equalCapacity = false)
    {
        var experts = Cluster.Experts(random.Next(1, 7), random.Next(1, 17));
        var count = random.Next(1, 8);
        var even = (experts.Count + count - 1) / count;
        var nodes = Enumerable.Range(0, count)
            .Select(i => new NodeCapacity(Cluster.Name(i), equalCapacity ? even + random.Next(0, 3) : random.Next(0, 2 * even + 2)))
            .ToList();
        if (!equalCapacity)
        {
            // Top up the last node so the cluster can always hold every expert.
            var missing = experts.Count - nodes.Sum(n => n.Slots);
            if (missing > 0)
                nodes[^1] = new NodeCapacity(nodes[^1].Address, nodes[^1].Slots + missing);
        }
        else
        {
            nodes = [.. nodes.Select(n => new NodeCapacity(n.Address, nodes[0].Slots))];
        }
        return (experts, nodes);
    }

    [Fact]
    public void Every_expert_gets_one_primary_and_no_node_exceeds_its_capacity()
    {
        foreach (var seed in Seeds)
        {
            var (experts, nodes) = RandomCluster(new Random(seed));
            Cluster.AssertValid(ExpertPlacement.Place(experts, nodes), experts, nodes);
        }
    }

    [Fact]
    public void A_node_below_capacity_holds_at_most_one_expert_fewer_than_the_fullest()
    {
        foreach (var seed in Seeds)
        {
            var (experts, nodes) = RandomCluster(new Random(seed));
            AssertEven(ExpertPlacement.Place(experts, nodes), nodes, seed);
        }
    }

    /// <summary>Water-filling: only a node at capacity may hold more than one primary fewer than the fullest.</summary>
    private static void AssertEven(PlacementPlan plan, IReadOnlyList<NodeCapacity> nodes, int seed)
    {
        var counts = Cluster.PrimaryCounts(plan, nodes);
        var most = counts.Values.Max();
        foreach (var node in nodes.Where(n => counts[n.Address] < n.Slots))
            Assert.True(counts[node.Address] >= most - 1, $"seed {seed}: {node.Address} holds {counts[node.Address]} of {node.Slots} slots while another holds {most}");
    }

    [Fact]
    public void With_equal_capacities_each_layer_differs_by_at_most_one_between_nodes()
    {
        foreach (var seed in Seeds)
        {
            var (experts, nodes) = RandomCluster(new Random(seed), equalCapacity: true);
            var plan = ExpertPlacement.Place(experts, nodes);
            foreach (var layer in experts.Select(e => e.Layer).Distinct())
            {
                var perNode = nodes.Select(n => plan.PrimariesOn(n.Address).Count(e => e.Layer == layer)).ToList();
                Assert.True(perNode.Max() - perNode.Min() <= 1, $"seed {seed}, layer {layer}: {string.Join(",", perNode)}");
            }
        }
    }

    [Fact]
    public void Re_planning_never_moves_anything()
    {
        foreach (var seed in Seeds)
        {
            var (experts, nodes) = RandomCluster(new Random(seed));
            var plan = ExpertPlacement.Place(experts, nodes);
            Assert.Empty(PlacementPlan.Moves(plan, ExpertPlacement.Place(experts, nodes, plan)));
        }
    }

    [Fact]
    public void A_joining_node_only_receives_experts_and_the_result_is_even()
    {
        foreach (var seed in Seeds)
        {
            var random = new Random(seed);
            var (experts, nodes) = RandomCluster(random);
            var before = ExpertPlacement.Place(experts, nodes);
            var joined = new NodeCapacity("node-new", random.Next(1, experts.Count + 1));
            List<NodeCapacity> after = [.. nodes, joined];

            var plan = ExpertPlacement.Place(experts, after, before);
            var moves = PlacementPlan.Moves(before, plan);

            Cluster.AssertValid(plan, experts, after);
            Assert.All(moves, m => Assert.Equal("node-new", m.ToNode));
            Assert.Equal(plan.PrimariesOn("node-new").Count, moves.Count);
            AssertEven(plan, after, seed);
        }
    }

    [Fact]
    public void A_leaving_node_moves_only_its_own_experts()
    {
        foreach (var seed in Seeds)
        {
            var random = new Random(seed);
            var (experts, nodes) = RandomCluster(random);
            if (nodes.Count < 2)
                continue;
            var before = ExpertPlacement.Place(experts, nodes);
            var gone = nodes[random.Next(nodes.Count)];
            var survivors = nodes.Where(n => n != gone).ToList();
            if (survivors.Sum(n => n.Slots) < experts.Count)
                continue;

            var plan = ExpertPlacement.Place(experts, survivors, before);
            var moves = PlacementPlan.Moves(before, plan);

            Cluster.AssertValid(plan, experts, survivors);
            Assert.Equal(before.PrimariesOn(gone.Address), moves.Select(m => m.Expert));
            AssertEven(plan, survivors, seed);
        }
    }

    [Fact]
    public void Replication_keeps_capacities_limits_and_primaries()
    {
        foreach (var seed in Seeds)
        {
            var random = new Random(seed);
            var (experts, nodes) = RandomCluster(random);
            var plan = ExpertPlacement.Place(experts, nodes);
            // Zipf-like skew: a few experts take most tokens.
            var load = new LoadWindow(experts.ToDictionary(e => e, e => (long)(10_000 / Math.Pow(1 + random.Next(experts.Count), 1.2))), 100, 99);
            var options = new ReplicationOptions { MaxReplicasPerExpert = random.Next(1, 5), MinTokensInWindow = 0 };

            var decision = ReplicationPlanner.Plan(load, plan, nodes, options);

            Cluster.AssertValid(decision.Plan, experts, nodes);
            Assert.All(decision.Plan.Replicas, kv => Assert.True(kv.Value.Count <= options.MaxReplicasPerExpert));
            Assert.All(experts, e => Assert.Equal(plan.NodeOf(e), decision.Plan.NodeOf(e)));
            Assert.All(decision.Changes, c => Assert.StartsWith(c.Expert.ToString(), c.Reason));
            Assert.Equal(decision.Plan.Replicas.Sum(kv => kv.Value.Count) - experts.Count, decision.Changes.Count(c => c.Kind == ChangeKind.Add));
        }
    }
}
