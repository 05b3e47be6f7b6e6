namespace MoeCluster.Placement.Tests;

public class RoutingStatisticsTests
{
    /// <summary>Two MoE layers (0 and 1), 4 experts, top-2; rows given as (expert, expert) pairs per layer.</summary>
    static LayerRouting Routing(int layer, params (int A, int B)[] rows) =>
        new(layer, 2, rows.SelectMany(r => new[] { r.A, r.B }).ToArray(), rows.Select(_ => 0.5f).ToArray());

    [Fact]
    public void Load_pairs_and_entropy_are_counted_per_token()
    {
        var stats = new RoutingStatistics([0, 1], experts: 4, topK: 2);
        stats.RecordStep([Routing(0, (0, 1), (1, 0), (2, 3)), Routing(1, (3, 2), (3, 1), (0, 1))], [10, 11, 12]);

        var l0 = stats.Snapshot().Layer(0)!;
        Assert.Equal(3, l0.Tokens);
        Assert.Equal(new long[] { 2, 2, 1, 1 }, l0.Load);
        Assert.Equal(2, l0.PairCount(0, 1));   // (0,1) and (1,0) are the same pair
        Assert.Equal(2, l0.PairCount(1, 0));
        Assert.Equal(1, l0.PairCount(2, 3));
        Assert.Equal(0, l0.PairCount(0, 2));
        Assert.Equal(0.5, l0.MeanEntropy, 6);
        Assert.Equal(0.5 / Math.Log(4), l0.NormalisedEntropy, 6);
    }

    [Fact]
    public void Cross_layer_counts_pair_a_token_s_experts_here_with_its_experts_at_the_next_MoE_layer()
    {
        var stats = new RoutingStatistics([0, 2], experts: 4, topK: 2);
        stats.RecordStep([Routing(0, (0, 1)), Routing(2, (3, 2))], [1]);
        var l0 = stats.Snapshot().Layer(0)!;
        Assert.Equal(2, l0.NextLayer);
        Assert.Equal(1, l0.NextLayerCoactivation![0][3]);
        Assert.Equal(1, l0.NextLayerCoactivation[1][2]);
        Assert.Equal(0, l0.NextLayerCoactivation[3][0]);
        Assert.Null(stats.Snapshot().Layer(2)!.NextLayer);
    }

    [Fact]
    public void Fluctuation_compares_consecutive_tokens_of_a_sequence_across_steps_and_forgets_finished_sequences()
    {
        var stats = new RoutingStatistics([0], experts: 4, topK: 2);
        // Sequence 7: a prefill chunk of two tokens (same experts), then a decode token changing one of two experts.
        stats.RecordStep([Routing(0, (0, 1), (1, 0), (2, 3))], [7, 7, 8]);
        stats.RecordStep([Routing(0, (1, 2), (2, 3))], [7, 8]);
        var l0 = stats.Snapshot().Layer(0)!;
        Assert.Equal(3, l0.Transitions);   // 7: t0→t1, t1→t2; 8: t0→t1
        Assert.Equal((0 + 0.5 + 0) / 3, l0.Fluctuation, 6);

        // Sequence 8 is absent from this step, so when an id 8 shows up again it is a new sequence.
        stats.RecordStep([Routing(0, (0, 1))], [7]);
        stats.RecordStep([Routing(0, (0, 1))], [8]);
        Assert.Equal(4, stats.Snapshot().Layer(0)!.Transitions);
    }

    [Fact]
    public void Nodes_per_token_and_colocated_pairs_follow_the_placement_given()
    {
        var stats = new RoutingStatistics([0], experts: 4, topK: 2);
        string Node(ExpertId e) => e.Expert < 2 ? "a" : "b";
        stats.RecordStep([Routing(0, (0, 1), (1, 2), (3, 2))], [1, 2, 3], Node);
        var l0 = stats.Snapshot().Layer(0)!;
        Assert.Equal((1 + 2 + 1) / 3.0, l0.NodesPerToken!.Value, 6);
        Assert.Equal(2 / 3.0, l0.ColocatedPairShare!.Value, 6);
        Assert.Null(new RoutingStatistics([0], 4, 2).Snapshot().Layer(0)!.NodesPerToken);
    }

    [Fact]
    public void The_window_drops_the_oldest_half_once_the_newest_half_is_full()
    {
        var stats = new RoutingStatistics([0], experts: 4, topK: 2, windowSteps: 4);
        stats.RecordStep([Routing(0, (0, 1))], [1]);
        stats.RecordStep([Routing(0, (0, 1))], [1]);   // first half full
        stats.RecordStep([Routing(0, (2, 3))], [1]);
        Assert.Equal(3, stats.Snapshot().Steps);
        stats.RecordStep([Routing(0, (2, 3))], [1]);   // second half full: the first is dropped
        var snapshot = stats.Snapshot();
        Assert.Equal(2, snapshot.Steps);
        Assert.Equal(0, snapshot.Layer(0)!.PairCount(0, 1));
        Assert.Equal(2, snapshot.Layer(0)!.PairCount(2, 3));
        Assert.Equal(4, stats.TotalSteps);
    }

    [Fact]
    public void A_malformed_step_is_refused_and_records_nothing()
    {
        var stats = new RoutingStatistics([0], experts: 4, topK: 2);
        var e = Assert.Throws<ArgumentException>(() => stats.RecordStep([Routing(0, (0, 9))], [1]));
        Assert.Contains("expert 9", e.Message);
        Assert.Throws<ArgumentException>(() => stats.RecordStep([Routing(3, (0, 1))], [1]));
        Assert.Throws<ArgumentException>(() => stats.RecordStep([Routing(0, (0, 1))], [1, 2]));
        Assert.Equal(0, stats.Snapshot().Tokens);
    }

    [Fact]
    public void A_snapshot_survives_its_JSON_form()
    {
        var stats = new RoutingStatistics([0, 1], experts: 4, topK: 2);
        stats.RecordStep([Routing(0, (0, 1), (2, 3)), Routing(1, (1, 2), (0, 3))], [1, 2], e => e.Expert % 2 == 0 ? "a" : "b");
        var before = stats.Snapshot("unit test");
        var after = RoutingSnapshot.Parse(before.ToJson());
        Assert.Equal(before.Experts, after.Experts);
        Assert.Equal(before.TopK, after.TopK);
        Assert.Equal("unit test", after.Source);
        Assert.Equal(before.ToJson(), after.ToJson());
    }

    [Theory]
    [InlineData("[]", "JSON object")]
    [InlineData("{\"experts\": 4, \"top_k\": 2, \"steps\": 1}", "'layers'")]
    [InlineData("{\"experts\": 4, \"top_k\": 9, \"steps\": 1, \"layers\": []}", "'top_k'")]
    [InlineData("{\"experts\": 2, \"top_k\": 1, \"steps\": 1, \"layers\": [{\"layer\": 0, \"tokens\": 1, \"entropy\": 0, \"fluctuation\": 0, \"transitions\": 0, \"load\": [1], \"coactivation\": [[0,0],[0,0]]}]}", "'layers[0].load'")]
    [InlineData("{\"experts\": 2, \"top_k\": 1, \"steps\": 1, \"layers\": [{\"layer\": 0, \"tokens\": 1, \"entropy\": 0, \"fluctuation\": 0, \"transitions\": 0, \"load\": [1, 0], \"coactivation\": [[0,0],[0,\"x\"]]}]}", "'layers[0].coactivation[1][1]'")]
    public void Malformed_routing_statistics_name_the_field(string json, string named)
    {
        var e = Assert.Throws<FormatException>(() => RoutingSnapshot.Parse(json));
        Assert.Contains(named, e.Message);
    }
}
