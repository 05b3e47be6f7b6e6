namespace MoeCluster.Placement.Tests;

public class CoactivationPlacementTests
{
    /// <summary>A profile of <paramref name="layers"/> layers of 8 experts, top-2, where tokens choose pairs of
    /// <paramref name="groups"/> (each token two experts of one group), <paramref name="tokens"/> tokens per pair.</summary>
    static RoutingSnapshot Profile(int layers, int[][] groups, int tokens = 100, int experts = 8)
    {
        var stats = new RoutingStatistics(Enumerable.Range(0, layers).ToList(), experts, 2);
        var rows = new List<(int, int)>();
        foreach (var g in groups)
            for (var i = 0; i < g.Length; i++)
                for (var j = i + 1; j < g.Length; j++)
                    for (var t = 0; t < tokens; t++)
                        rows.Add((g[i], g[j]));
        var routing = Enumerable.Range(0, layers)
            .Select(l => new LayerRouting(l, 2, rows.SelectMany(r => new[] { r.Item1, r.Item2 }).ToArray(), new float[rows.Count]))
            .ToList();
        stats.RecordStep(routing, Enumerable.Range(0, rows.Count).Select(i => (long)i).ToList());
        return stats.Snapshot();
    }

    // Groups that the even plan splits: it deals a layer's experts round the nodes in index order.
    static readonly int[][] Halves = [[0, 1, 2, 3], [4, 5, 6, 7]];

    [Fact]
    public void Experts_chosen_together_end_up_on_the_same_node()
    {
        var experts = Cluster.Experts(2, 8);
        var nodes = Cluster.Nodes(2, 8);
        var profile = Profile(2, Halves);

        var plan = CoactivationPlacement.Place(experts, nodes, profile);

        Cluster.AssertValid(plan, experts, nodes);
        foreach (var group in Halves)
            for (var l = 0; l < 2; l++)
                Assert.Single(group.Select(e => plan.NodeOf(new ExpertId(l, e))).Distinct());
        Assert.Equal(1.0, CoactivationPlacement.ColocatedShare(plan, profile), 6);
        Assert.True(CoactivationPlacement.ColocatedShare(ExpertPlacement.Place(experts, nodes), profile) < 0.5);
    }

    [Fact]
    public void Each_node_keeps_within_its_slots_and_the_slack_over_what_even_placement_gives_it()
    {
        var experts = Cluster.Experts(3, 8);
        var nodes = new List<NodeCapacity> { new("node-a", 10), new("node-b", 8), new("node-c", 7) };
        var even = ExpertPlacement.Place(experts, nodes);
        var plan = CoactivationPlacement.Place(experts, nodes, Profile(3, [[0, 1, 2], [3, 4, 5], [6, 7]]), loadSlack: 0.25);

        Cluster.AssertValid(plan, experts, nodes);
        foreach (var node in nodes)
            Assert.True(plan.PrimariesOn(node.Address).Count <= Math.Floor(1.25 * even.PrimariesOn(node.Address).Count),
                $"{node.Address}: {plan.PrimariesOn(node.Address).Count} experts, even gives it {even.PrimariesOn(node.Address).Count}");
    }

    [Fact]
    public void A_larger_slack_lets_a_layer_whose_experts_all_run_together_share_one_node()
    {
        // Every pair of a layer's experts is chosen equally often: no split of the layer beats keeping it whole.
        var all = Enumerable.Range(0, 8).ToArray();
        var profile = Profile(2, [all]);
        var experts = Cluster.Experts(2, 8);
        var nodes = Cluster.Nodes(2, 16);

        var spread = CoactivationPlacement.Place(experts, nodes, profile, loadSlack: 0.25);
        var whole = CoactivationPlacement.Place(experts, nodes, profile, loadSlack: 2);

        Assert.All(spread.Nodes, n => Assert.InRange(spread.PrimariesOn(n).Count(e => e.Layer == 0), 3, 5));   // at most 62.5 % of a layer per node
        Assert.Equal(1.0, CoactivationPlacement.ColocatedShare(whole, profile), 6);
        Assert.NotEqual(whole.NodeOf(new ExpertId(0, 0)), whole.NodeOf(new ExpertId(1, 0)));          // the layers alternate
    }

    [Fact]
    public void Grouping_does_not_pile_a_layer_s_tokens_on_one_node_beyond_the_slack()
    {
        // Experts 0–3 are chosen together by most tokens; 4–7 by few. Putting 0–3 on one node would give it ~90 % of
        // the layer's tokens; with a 25 % slack over its fair half a node may take at most 62.5 %.
        var stats = new RoutingStatistics([0], 8, 2);
        var rows = new List<int>();
        for (var t = 0; t < 900; t++) rows.AddRange(t % 2 == 0 ? [0, 1] : [2, 3]);
        for (var t = 0; t < 100; t++) rows.AddRange(t % 2 == 0 ? [4, 5] : [6, 7]);
        stats.RecordStep([new LayerRouting(0, 2, rows.ToArray(), new float[rows.Count / 2])], Enumerable.Range(0, rows.Count / 2).Select(i => (long)i).ToList());
        var profile = stats.Snapshot();
        var experts = Cluster.Experts(1, 8);

        var plan = CoactivationPlacement.Place(experts, Cluster.Nodes(2, 8), profile, loadSlack: 0.25);

        foreach (var node in plan.Nodes)
        {
            var share = plan.PrimariesOn(node).Sum(e => profile.Layer(0)!.Load[e.Expert]) / (double)profile.Layer(0)!.Load.Sum();
            Assert.True(share <= 0.625 + 1e-9, $"{node} takes {share:P0} of the layer's tokens");
        }
        // Pairs still stay together where the load allows: (0,1) and (2,3) each on one node.
        Assert.Equal(plan.NodeOf(new ExpertId(0, 0)), plan.NodeOf(new ExpertId(0, 1)));
        Assert.Equal(plan.NodeOf(new ExpertId(0, 2)), plan.NodeOf(new ExpertId(0, 3)));
    }

    [Fact]
    public void The_same_inputs_give_the_same_plan()
    {
        var experts = Cluster.Experts(2, 8);
        var nodes = Cluster.Nodes(3, 8);
        var profile = Profile(2, [[0, 5], [1, 6, 7], [2, 3, 4]]);
        Assert.Equal(CoactivationPlacement.Place(experts, nodes, profile), CoactivationPlacement.Place(experts, nodes.AsEnumerable().Reverse().ToList(), profile));
    }

    [Fact]
    public void A_layer_the_profile_does_not_know_is_placed_evenly()
    {
        var experts = Cluster.Experts(2, 8);
        var nodes = Cluster.Nodes(2, 8);
        var plan = CoactivationPlacement.Place(experts, nodes, Profile(1, Halves));
        var even = ExpertPlacement.Place(experts, nodes);
        foreach (var e in experts.Where(e => e.Layer == 1))
            Assert.Equal(even.NodeOf(e), plan.NodeOf(e));
    }

    [Fact]
    public void A_profile_of_a_smaller_model_is_refused_with_what_to_do()
    {
        var e = Assert.Throws<PlacementException>(() =>
            CoactivationPlacement.Place(Cluster.Experts(1, 16), Cluster.Nodes(2, 16), Profile(1, Halves)));
        Assert.Contains("routing-stats", e.Message);
    }
}
