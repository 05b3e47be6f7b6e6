namespace MoeCluster.Placement.Tests;

public class PlacementPlanTests
{
    [Fact]
    public void Two_replicas_of_one_expert_on_the_same_node_are_rejected()
    {
        var error = Assert.Throws<PlacementException>(() => Cluster.Plan(("L0.E1", ["node-a", "node-a"])));
        Assert.Contains("L0.E1 has two replicas on node 'node-a'", error.Message);
    }

    [Fact]
    public void An_expert_without_replicas_is_rejected() =>
        Assert.Throws<PlacementException>(() => Cluster.Plan(("L0.E1", [])));

    [Fact]
    public void Queries_see_primaries_and_redundant_replicas()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-b"]), ("L0.E1", ["node-b"]), ("L1.E0", ["node-a"]));

        Assert.Equal("node-a", plan.NodeOf(new ExpertId(0, 0)));
        Assert.Equal([new ExpertId(0, 0), new ExpertId(0, 1)], plan.ExpertsOn("node-b"));
        Assert.Equal([new ExpertId(0, 1)], plan.PrimariesOn("node-b"));
        Assert.Equal(2, plan.SlotsUsed("node-b"));
        Assert.Equal(["node-a", "node-b"], plan.Nodes);
        Assert.Throws<KeyNotFoundException>(() => plan.NodeOf(new ExpertId(5, 5)));
    }

    [Fact]
    public void Plans_with_the_same_replicas_are_equal_and_order_of_replicas_matters()
    {
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-b"]), ("L0.E1", ["node-b"]));

        Assert.Equal(plan, Cluster.Plan(("L0.E1", ["node-b"]), ("L0.E0", ["node-a", "node-b"])));
        Assert.Equal(plan.GetHashCode(), Cluster.Plan(("L0.E1", ["node-b"]), ("L0.E0", ["node-a", "node-b"])).GetHashCode());
        Assert.NotEqual(plan, Cluster.Plan(("L0.E0", ["node-b", "node-a"]), ("L0.E1", ["node-b"])));
    }

    [Fact]
    public void Moves_list_primaries_that_changed_node()
    {
        var before = Cluster.Plan(("L0.E0", ["node-a"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-c"]));
        var after = Cluster.Plan(("L0.E0", ["node-a", "node-c"]), ("L0.E1", ["node-c"]), ("L0.E3", ["node-a"]));

        Assert.Equal(
            [new ExpertMove(new(0, 1), "node-b", "node-c"), new ExpertMove(new(0, 3), null, "node-a")],
            PlacementPlan.Moves(before, after));
    }
}
