using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Placement;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Routing;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>Experts that do not fit (a resident set with look-ahead) and int8 experts change what an expert node holds,
/// not what the cluster computes.</summary>
public class ExpertMemorySpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };
    static readonly GenerationRequest[] Requests = [new("a", [4, 8, 15, 16, 23, 42], 10), new("b", Enumerable.Range(30, 20).ToArray(), 8), new("c", [7, 7], 12)];

    static Dictionary<string, IReadOnlyList<int>> SingleProcess(MoeTransformer model)
    {
        using var engine = new LocalEngine(model, Batching);
        return engine.Run(Requests).ToDictionary(p => p.Key, p => p.Value.Generated);
    }

    static async Task<Dictionary<string, IReadOnlyList<int>>> Cluster(string checkpoint, RuntimeOptions runtime)
    {
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] } : runtime with { Roles = [NodeRoles.Expert] });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var finished = await Task.WhenAll(Requests.Select(r => service.GenerateToEndAsync(r)));
            Assert.All(finished, f => Assert.True(f.Reason == FinishReason.Length, $"{f.RequestId} ended with {f.Reason}: {f.Error}"));
            return finished.ToDictionary(f => f.RequestId, f => f.Generated);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    [Fact]
    public async Task Expert_nodes_keeping_half_their_experts_resident_with_look_ahead_generate_the_single_process_tokens()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        double used = MoeMetrics.ExpertPrefetches.WithLabels("used").Value, misses = MoeMetrics.ExpertResidency.WithLabels("miss").Value;
        // 2 layers × 6 experts over two expert nodes: 6 each, 3 resident.
        var generated = await Cluster(checkpoint, new RuntimeOptions
        {
            ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2, ResidentExperts = 3, ExpertLookahead = true,
        });
        var expected = SingleProcess(model);
        foreach (var r in Requests) Assert.Equal(expected[r.Id], generated[r.Id]);
        Assert.True(MoeMetrics.ExpertResidency.WithLabels("miss").Value > misses, "experts were loaded on demand");
        Assert.True(MoeMetrics.ExpertPrefetches.WithLabels("used").Value > used, "some prefetched experts were used");
    }

    [Fact]
    public async Task Int8_cold_experts_in_the_cluster_generate_what_the_model_with_those_experts_int8_generates()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var profile = RoutingProfiler.Profile(model, [Enumerable.Range(1, 40).ToArray(), [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]]);
        var profilePath = Path.Combine(checkpoint, "routing-profile.json");
        File.WriteAllText(profilePath, profile.ToJson());
        var int8 = ExpertPrecision.Int8Experts(profile, "cold", 0.5);
        Assert.Equal(6, int8.Count);   // 3 of 6 in each of the 2 layers (no super expert in a random model)

        double before = MoeMetrics.ExpertMemoryBytes.WithLabels("int8").Value;
        var generated = await Cluster(checkpoint, new RuntimeOptions
        {
            ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2, Int8Experts = "cold", Int8Budget = 0.5, RoutingProfile = profilePath,
        });
        foreach (var e in int8) Int8Expert.FakeQuantise(model.Layers[e.Layer].Moe!.experts[e.Expert]);
        var expected = SingleProcess(model);
        foreach (var r in Requests) Assert.Equal(expected[r.Id], generated[r.Id]);
        Assert.True(MoeMetrics.ExpertMemoryBytes.WithLabels("int8").Value >= before, "int8 experts were counted while loaded");
    }
}
