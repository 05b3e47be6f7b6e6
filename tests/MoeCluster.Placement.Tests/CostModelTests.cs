namespace MoeCluster.Placement.Tests;

public class CostModelTests
{
    /// <summary>Mixtral-like: 8 layers, hidden 512, 8 experts of width 1408, top-2, vocabulary 32000, float32.</summary>
    static readonly ModelShape Model = new()
    {
        Layers = 8, Hidden = 512, Heads = 8, KvHeads = 2, HeadDim = 64, Vocab = 32000, Experts = 8, TopK = 2, ExpertWidth = 1408,
        MoeLayers = Enumerable.Range(0, 8).ToList(),
    };

    static readonly MachineCeilings Machine = new(WeightStreamBytesPerSecond: 20e9, MatmulFlopsPerSecond: 100e9, OpSeconds: 5e-6, Cores: 2);
    static readonly IBlockCosts Costs = new RooflineCosts(Model, Machine);

    static ClusterShape Cluster(int nodes, double gb = 16, bool shared = false) => new(nodes, (long)(gb * 1e9), 10e9, 2e-4, 2e-5, shared);

    [Fact]
    public void Memory_per_node_adds_up_to_the_model_and_the_experts_spread_evenly()
    {
        var p = CostModel.Predict(Model, Cluster(3), Costs, [1], contextTokens: 512, slots: 32);
        Assert.True(p.Fits);
        Assert.Equal(64, p.Nodes.Sum(n => n.Experts));
        Assert.Equal([32, 32], p.Nodes.Skip(1).Select(n => n.Experts));
        Assert.Equal(Model.GatewayBytes + Model.AllExpertBytes, p.Nodes.Sum(n => n.WeightBytes));
        Assert.Equal(Model.KvBytesPerToken * 512 * 32, p.Nodes[0].KvCacheBytes);
        // 3·512·1408 weights × 4 bytes = 8.65 MB per expert.
        Assert.Equal(32 * 3L * 512 * 1408 * 4, p.Nodes[1].WeightBytes);
    }

    [Fact]
    public void A_cluster_too_small_for_the_experts_does_not_fit_and_says_how_short_it_is()
    {
        var p = CostModel.Predict(Model, Cluster(3, gb: 0.1), Costs, [1], 512, 32);
        Assert.False(p.Fits);
        Assert.Contains("slots", p.Problem);
    }

    [Fact]
    public void Batching_raises_throughput_and_separate_expert_machines_shorten_the_expert_part()
    {
        var p = CostModel.Predict(Model, Cluster(3), Costs, [1, 8, 32], 512, 32);
        var tps = p.Decode.Select(d => d.Sequences / d.Step.Seconds).ToList();
        Assert.True(tps[0] < tps[1] && tps[1] < tps[2]);
        var shared = CostModel.Step(Model, Cluster(3, shared: true), Costs, 32, 1, 256);
        var separate = CostModel.Step(Model, Cluster(3), Costs, 32, 1, 256);
        Assert.True(separate.Experts < shared.Experts);
        Assert.Equal(shared.Attention, separate.Attention);
    }

    [Fact]
    public void Bytes_between_nodes_follow_the_nodes_a_token_s_experts_span()
    {
        Assert.Equal(0, CostModel.Step(Model, Cluster(1), Costs, 4, 1, 64).NetworkBytes);
        // Two expert nodes, top-2: ν = 2·(1 − ½²) = 1.5 rows out and 1.5 combined rows back per token and layer.
        var s = CostModel.Step(Model, Cluster(3), Costs, 4, 1, 64);
        Assert.Equal(8 * 4 * (1.5 + 1.5) * 512 * 4, s.NetworkBytes, 6);
    }

    [Fact]
    public void Measured_block_costs_are_interpolated_between_and_extended_beyond_their_points()
    {
        var costs = new MeasuredCosts(
            new Dictionary<int, IReadOnlyList<(int, double)>> { [1] = [(1, 1e-3), (8, 2e-3)], [16] = [(1, 4e-3)] },
            [(1, 1e-4), (4, 2e-4)], [(1, 5e-5)], [(1, 1e-3), (32, 4e-3)]);
        Assert.Equal(1e-3 + 1e-3 * 3 / 7.0, costs.Attention(4, 1, 100), 9);
        Assert.Equal(8e-3, costs.Attention(1, 32, 0), 9);           // nearest prompt length 16, scaled to 32 tokens
        Assert.Equal(3e-4, costs.Expert(7), 9);                     // beyond the last point: the last line goes on
        Assert.Equal(5e-5 * 6, costs.Router(6), 9);                 // one point: proportional to the count
        Assert.Equal(1e-3, costs.Head(1), 9);
    }
}
