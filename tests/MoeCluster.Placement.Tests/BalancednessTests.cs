namespace MoeCluster.Placement.Tests;

public class BalancednessTests
{
    [Fact]
    public void Even_load_is_perfectly_balanced() =>
        Assert.Equal(1.0, Balancedness.OfLayer(Cluster.Window(0, [250, 250, 250, 250]), 0));

    [Fact]
    public void Balancedness_is_mean_over_max() =>
        Assert.Equal(0.5, Balancedness.OfLayer(Cluster.Window(0, [400, 200, 100, 100]), 0), 12); // mean 200, max 400

    [Fact]
    public void One_expert_taking_everything_scores_one_over_the_expert_count() =>
        Assert.Equal(0.125, Balancedness.OfLayer(Cluster.Window(0, [800, 0, 0, 0, 0, 0, 0, 0]), 0), 12);

    [Fact]
    public void A_layer_without_tokens_counts_as_balanced() =>
        Assert.Equal(1.0, Balancedness.OfLayer(Cluster.Window(0, [0, 0]), 0));

    [Fact]
    public void Per_layer_covers_every_layer_of_the_window()
    {
        var tokens = new Dictionary<ExpertId, long> { [new(0, 0)] = 10, [new(0, 1)] = 10, [new(2, 0)] = 30, [new(2, 1)] = 10 };

        var perLayer = Balancedness.PerLayer(new LoadWindow(tokens, 1, 0));

        Assert.Equal([0, 2], perLayer.Keys.Order());
        Assert.Equal(1.0, perLayer[0]);
        Assert.Equal(20.0 / 30, perLayer[2], 12);
    }

    [Fact]
    public void Replicas_split_an_experts_tokens_evenly()
    {
        var load = Cluster.Window(0, [400, 200, 100, 100]);
        var plan = Cluster.Plan(("L0.E0", ["node-a", "node-b"]), ("L0.E1", ["node-b"]), ("L0.E2", ["node-a"]), ("L0.E3", ["node-b"]));

        // Per replica: 200, 200, 200, 100, 100 -> mean 160, max 200.
        Assert.Equal(0.8, Balancedness.OfLayer(load, plan, 0), 12);
        Assert.Equal(0.8, Balancedness.PerLayer(load, plan)[0], 12);
    }

    [Fact]
    public void Across_nodes_sums_each_nodes_share_of_the_layer()
    {
        var load = Cluster.Window(0, [400, 200, 100, 100]);
        var plan = Cluster.Plan(("L0.E0", ["node-a"]), ("L0.E1", ["node-a"]), ("L0.E2", ["node-b"]), ("L0.E3", ["node-b"]));
        var replicated = Cluster.Plan(("L0.E0", ["node-a", "node-b"]), ("L0.E1", ["node-a"]), ("L0.E2", ["node-b"]), ("L0.E3", ["node-b"]));

        Assert.Equal(400.0 / 600, Balancedness.AcrossNodes(load, plan, 0), 12);   // a 600, b 200
        Assert.Equal(1.0, Balancedness.AcrossNodes(load, replicated, 0), 12);      // a 400, b 400
    }
}
