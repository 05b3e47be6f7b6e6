using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Placement;
using MoeCluster.Runtime.Experts;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>--placement coactivation puts experts that a routing profile says are chosen together on one node, and the
/// cluster still produces the single-process tokens.</summary>
public class CoactivationPlacementSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };
    static readonly int[][] Groups = [[0, 1, 2], [3, 4, 5]];   // even placement deals a layer's experts round the nodes, splitting both

    /// <summary>A profile of the tiny model's 2 layers × 6 experts in which tokens choose two experts of one group.</summary>
    static string ProfileFile()
    {
        var stats = new RoutingStatistics([0, 1], experts: 6, topK: 2);
        var rows = new List<int>();
        foreach (var g in Groups)
            for (int i = 0; i < g.Length; i++)
                for (int j = i + 1; j < g.Length; j++)
                    for (int t = 0; t < 50; t++) rows.AddRange([g[i], g[j]]);
        var layers = new[] { 0, 1 }.Select(l => new LayerRouting(l, 2, rows.ToArray(), new float[rows.Count / 2])).ToList();
        stats.RecordStep(layers, Enumerable.Range(0, rows.Count / 2).Select(i => (long)i).ToList());
        var path = Path.Combine(Path.GetTempPath(), $"moecluster-profile-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, stats.Snapshot().ToJson());
        return path;
    }

    [Fact]
    public async Task Experts_chosen_together_share_a_node_and_the_tokens_are_the_single_process_tokens()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var profile = ProfileFile();
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2, Placement = PlacementStrategy.Coactivation, RoutingProfile = profile };
        GenerationRequest[] requests = [new("a", [4, 8, 15, 16, 23, 42], 8), new("b", Enumerable.Range(30, 20).ToArray(), 6)];
        Dictionary<string, IReadOnlyList<int>> expected;
        using (var engine = new LocalEngine(model, Batching)) expected = engine.Run(requests).ToDictionary(p => p.Key, p => p.Value.Generated);

        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] } : runtime with { Roles = [NodeRoles.Expert] });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var placement = await PlacementView.ExpertNodesAsync(nodes[0]);
            foreach (var layer in new[] { 0, 1 })
                foreach (var group in Groups)
                    Assert.Single(group.Select(e => placement[$"L{layer}.E{e}"]).Distinct());
            Assert.Equal(2, placement.Values.Distinct().Count());
            Assert.Equal(1.0, PlacementStrategy.From(runtime, model.Config).ColocatedShare(placement));

            var finished = await Task.WhenAll(requests.Select(r => service.GenerateToEndAsync(r)));
            foreach (var f in finished) Assert.Equal(expected[f.RequestId], f.Generated);
        }
        finally
        {
            foreach (var n in nodes.Reverse()) await n.DisposeAsync();
            File.Delete(profile);
        }
    }

    [Fact]
    public void A_placement_setting_that_cannot_work_is_refused_at_start_naming_what_to_fix()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var config = model.Config;
        var o = new RuntimeOptions { ModelDirectory = "unused" };
        Assert.Contains("'spread'", Assert.Throws<ArgumentException>(() => PlacementStrategy.From(o with { Placement = "spread" }, config)).Message);
        Assert.Contains("--routing-profile", Assert.Throws<ArgumentException>(() => PlacementStrategy.From(o with { Placement = "coactivation" }, config)).Message);
        var profile = ProfileFile();
        try
        {
            var other = config with { NumExperts = 8 };
            Assert.Contains("8 and top-2", Assert.Throws<ArgumentException>(() => PlacementStrategy.From(o with { Placement = "coactivation", RoutingProfile = profile }, other)).Message);
            Assert.Contains("--placement-load-slack", Assert.Throws<ArgumentException>(() => PlacementStrategy.From(o with { Placement = "coactivation", RoutingProfile = profile, PlacementLoadSlack = -1 }, config)).Message);
            File.WriteAllText(profile, "{ \"experts\": 6 }");
            Assert.Contains("'top_k' is missing", Assert.Throws<ArgumentException>(() => PlacementStrategy.From(o with { Placement = "coactivation", RoutingProfile = profile }, config)).Message);
        }
        finally { File.Delete(profile); }
        Assert.Equal(PlacementStrategy.Even, PlacementStrategy.From(o, config).Name);
    }
}
