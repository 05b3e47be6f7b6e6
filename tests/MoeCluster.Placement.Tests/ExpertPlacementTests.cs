namespace MoeCluster.Placement.Tests;

public class ExpertPlacementTests
{
    [Fact]
    public void Primaries_spread_evenly_when_capacities_allow()
    {
        var nodes = Cluster.Nodes(3, 100);
        var plan = ExpertPlacement.Place(Cluster.Experts(4, 8), nodes);

        Assert.Equal([11, 11, 10], Cluster.PrimaryCounts(plan, nodes).Values.OrderDescending());
    }

    [Fact]
    public void A_small_node_is_filled_and_the_rest_share_the_remainder()
    {
        List<NodeCapacity> nodes = [new("node-a", 2), new("node-b", 100), new("node-c", 100)];
        var plan = ExpertPlacement.Place(Cluster.Experts(2, 10), nodes);

        Assert.Equal(new Dictionary<string, int> { ["node-a"] = 2, ["node-b"] = 9, ["node-c"] = 9 }, Cluster.PrimaryCounts(plan, nodes));
    }

    [Fact]
    public void Each_layer_is_spread_over_all_nodes()
    {
        var nodes = Cluster.Nodes(4, 8);
        var plan = ExpertPlacement.Place(Cluster.Experts(4, 8), nodes);

        foreach (var layer in Enumerable.Range(0, 4))
            foreach (var node in nodes)
                Assert.Equal(2, plan.PrimariesOn(node.Address).Count(e => e.Layer == layer));
    }

    [Fact]
    public void Too_little_capacity_throws_naming_the_numbers()
    {
        var error = Assert.Throws<PlacementException>(() => ExpertPlacement.Place(Cluster.Experts(1, 10), Cluster.Nodes(2, 4)));

        Assert.Contains("10 experts", error.Message);
        Assert.Contains("2 nodes", error.Message);
        Assert.Contains("8 expert slots", error.Message);
        Assert.Contains("add 2 slots", error.Message);
    }

    [Fact]
    public void Duplicate_experts_and_nodes_are_rejected()
    {
        Assert.Throws<PlacementException>(() => ExpertPlacement.Place([new(0, 1), new(0, 1)], Cluster.Nodes(2, 4)));
        var error = Assert.Throws<PlacementException>(() => ExpertPlacement.Place(Cluster.Experts(1, 2), [new("node-a", 2), new("node-a", 2)]));
        Assert.Contains("node-a", error.Message);
    }

    [Fact]
    public void Same_input_in_any_order_gives_the_same_plan()
    {
        var experts = Cluster.Experts(3, 7);
        var nodes = Cluster.Nodes(4, 6);
        var expected = ExpertPlacement.Place(experts, nodes);
        var random = new Random(7);
        for (var i = 0; i < 10; i++)
        {
            var shuffledExperts = experts.OrderBy(_ => random.Next()).ToList();
            var shuffledNodes = nodes.OrderBy(_ => random.Next()).ToList();
            Assert.Equal(expected, ExpertPlacement.Place(shuffledExperts, shuffledNodes));
        }
    }

    [Fact]
    public void A_fourth_node_joining_takes_a_quarter_of_the_experts_and_nothing_else_moves()
    {
        var experts = Cluster.Experts(4, 8);
        var before = ExpertPlacement.Place(experts, Cluster.Nodes(3, 16));
        var nodes = Cluster.Nodes(4, 16);

        var after = ExpertPlacement.Place(experts, nodes, before);
        var moves = PlacementPlan.Moves(before, after);

        Assert.Equal(8, moves.Count);
        Assert.All(moves, m => Assert.Equal("node-d", m.ToNode));
        Assert.All(moves, m => Assert.Equal(before.NodeOf(m.Expert), m.FromNode));
        Assert.All(Cluster.PrimaryCounts(after, nodes).Values, count => Assert.Equal(8, count));
        // The newcomer gets a mix of layers, not one layer's worth.
        Assert.All(Enumerable.Range(0, 4), layer => Assert.Equal(2, after.PrimariesOn("node-d").Count(e => e.Layer == layer)));
    }

    [Fact]
    public void A_node_leaving_moves_only_its_own_experts()
    {
        var experts = Cluster.Experts(4, 8);
        var before = ExpertPlacement.Place(experts, Cluster.Nodes(4, 16));
        var departed = before.PrimariesOn("node-c");
        List<NodeCapacity> survivors = [.. Cluster.Nodes(4, 16).Where(n => n.Address != "node-c")];

        var after = ExpertPlacement.Place(experts, survivors, before);
        var moves = PlacementPlan.Moves(before, after);

        Assert.Equal(departed, moves.Select(m => m.Expert));
        Assert.All(moves, m => Assert.Equal("node-c", m.FromNode));
        Assert.Equal([11, 11, 10], Cluster.PrimaryCounts(after, survivors).Values.OrderDescending());
    }

    [Fact]
    public void Re_planning_the_same_input_moves_nothing()
    {
        var experts = Cluster.Experts(5, 7);
        var nodes = Cluster.Nodes(4, 12);
        var plan = ExpertPlacement.Place(experts, nodes);

        var again = ExpertPlacement.Place(experts, nodes, plan);

        Assert.Empty(PlacementPlan.Moves(plan, again));
        Assert.Equal(plan, again);
    }

    [Fact]
    public void First_placement_reports_every_expert_moving_from_no_node()
    {
        var plan = ExpertPlacement.Place(Cluster.Experts(1, 4), Cluster.Nodes(2, 2));
        var moves = PlacementPlan.Moves(null, plan);

        Assert.Equal(4, moves.Count);
        Assert.All(moves, m => Assert.Null(m.FromNode));
    }

    [Fact]
    public void An_expert_whose_primary_left_is_promoted_onto_its_surviving_replica()
    {
        var current = Cluster.Plan(
            ("L0.E0", ["node-a", "node-c"]), ("L0.E1", ["node-a"]),
            ("L0.E2", ["node-b"]), ("L0.E3", ["node-c"]));
        List<NodeCapacity> survivors = [new("node-b", 4), new("node-c", 4)];

        var after = ExpertPlacement.Place(Cluster.Experts(1, 4), survivors, current);

        Assert.Equal(["node-c"], after.ReplicasOf(new ExpertId(0, 0)));
        Assert.Equal("node-b", after.NodeOf(new ExpertId(0, 1)));
    }

    [Fact]
    public void Redundant_replicas_are_kept_where_their_node_remains_and_has_room()
    {
        var current = Cluster.Plan(
            ("L0.E0", ["node-a", "node-b", "node-c"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-c"]));

        var sameNodes = ExpertPlacement.Place(Cluster.Experts(1, 3), Cluster.Nodes(3, 2), current);
        var withoutC = ExpertPlacement.Place(Cluster.Experts(1, 3), [new("node-a", 2), new("node-b", 2)], current);

        Assert.Equal(current, sameNodes);
        Assert.Equal(["node-a", "node-b"], withoutC.ReplicasOf(new ExpertId(0, 0)));
        Cluster.AssertValid(withoutC, Cluster.Experts(1, 3), [new("node-a", 2), new("node-b", 2)]);
    }

    [Fact]
    public void Replicas_without_a_free_slot_are_dropped_before_primaries()
    {
        var current = Cluster.Plan(("L0.E0", ["node-a", "node-b"]), ("L0.E1", ["node-b"]));
        List<NodeCapacity> nodes = [new("node-a", 1), new("node-b", 1)];

        var after = ExpertPlacement.Place(Cluster.Experts(1, 2), nodes, current);

        Assert.Equal(["node-a"], after.ReplicasOf(new ExpertId(0, 0)));
        Assert.Equal(["node-b"], after.ReplicasOf(new ExpertId(0, 1)));
    }
}
