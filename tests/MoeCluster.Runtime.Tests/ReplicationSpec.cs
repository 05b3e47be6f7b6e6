using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Placement;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Replication;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>Hot-expert replication on a 3-node cluster whose router sends half of the hot tokens' assignments to one
/// expert: replicas appear on the other nodes, tokens are computed there, greedy output stays the single-process
/// output, replicas retire when the load moves away, and a replica's node leaving shrinks the set without failures.</summary>
public class ReplicationSpec
{
    const int HotExpert = 2;
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };

    /// <summary>Thresholds low enough for a test's few hundred tokens; the planner's rules are the production ones.</summary>
    static readonly HotExpertOptions Fast = new()
    {
        Enabled = true, Interval = TimeSpan.FromMilliseconds(300), WindowSteps = 30,
        Thresholds = new ReplicationOptions { MinTokensInWindow = 50, MinStepsBetweenChanges = 10 },
    };

    static bool IsHot(int token) => token < 48;

    static GenerationRequest[] HotRequests(string tag) =>
    [
        new($"{tag}-a", [4, 8, 15, 16, 23, 42], 8),
        new($"{tag}-b", Enumerable.Range(10, 21).ToArray(), 6),
        new($"{tag}-c", [30, 31, 32, 33, 34], 8),
        new($"{tag}-d", [2, 3, 5, 7, 11, 13, 17], 8),
    ];

    /// <summary>Load that warrants three copies from any replica count: hot prompts and one fed-back token each, so
    /// the hot expert takes nearly 4× the per-replica target (above the 2 × 1.5 that adds a third copy to two).</summary>
    /// <remarks>Not <see cref="HotRequests"/>: their generated tokens are mostly cold (49, 69, 71, 85, ...), which
    /// brings the hot expert to 2.9× the target over a whole round. That adds a third copy only when the planner first
    /// sees it at one copy; a window that first justified two leaves it at two (1.45× per copy, inside the deadband),
    /// which on a loaded machine made the warm-up wait run out.</remarks>
    static GenerationRequest[] WarmRequests(string tag) =>
    [
        new($"{tag}-a", Enumerable.Range(1, 24).ToArray(), 2),
        new($"{tag}-b", Enumerable.Range(24, 24).ToArray(), 2),
        new($"{tag}-c", Enumerable.Range(5, 30).Reverse().ToArray(), 2),
        new($"{tag}-d", Enumerable.Range(10, 32).Where(t => t % 3 != 0).ToArray(), 2),
    ];

    static GenerationRequest[] ColdRequests(string tag) =>
    [
        new($"{tag}-a", [50, 51, 52, 53, 54, 55], 8),
        new($"{tag}-b", Enumerable.Range(60, 20).ToArray(), 6),
        new($"{tag}-c", [90, 85, 80, 75, 70], 8),
        new($"{tag}-d", [49, 59, 69, 79, 89], 8),
    ];

    static string SkewedCheckpoint()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        SkewedRouting.Apply(model, HotExpert, IsHot);
        return TinyCheckpoint.Write(model);
    }

    static Dictionary<string, IReadOnlyList<int>> SingleProcess(string checkpoint, IEnumerable<GenerationRequest> requests)
    {
        using var model = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32);
        var result = new Dictionary<string, IReadOnlyList<int>>();
        foreach (var r in requests)
        {
            using var engine = new LocalEngine(model, Batching);
            result[r.Id] = engine.Run([r])[r.Id].Generated;
        }
        return result;
    }

    /// <summary>Node 0: gateway, attention and experts (the coordinator runs here); nodes 1 and 2: experts.</summary>
    static Task<InProcessNode[]> StartCluster(string checkpoint)
    {
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 3, Replication = Fast };
        return InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = NodeRoles.All } : runtime with { Roles = [NodeRoles.Expert] });
    }

    static async Task<IReadOnlyDictionary<string, string[]>> ReplicaSets(InProcessNode gateway)
    {
        var sets = await gateway.Registry.Get<ReplicaDirectoryKey>().Ask<ReplicaSets>(new GetReplicaSets(), TimeSpan.FromSeconds(5));
        return sets.Replicas;
    }

    static string Hot(int layer) => new ExpertKey(layer, HotExpert).EntityId;

    /// <summary>Copies of the hot expert of <paramref name="layer"/> in the gateway's replica sets (0 when it has none).</summary>
    static int Copies(IReadOnlyDictionary<string, string[]> sets, int layer) => sets.TryGetValue(Hot(layer), out var s) ? s.Length : 0;

    /// <summary>Sends requests (concurrently, in rounds) until <paramref name="done"/> holds for the replica sets; a
    /// timeout names the hot expert's sets per layer and the changes made, so a red run says where it stalled.</summary>
    static async Task DriveUntil(IGenerationService service, InProcessNode gateway, Func<int, GenerationRequest[]> round,
        Func<IReadOnlyDictionary<string, string[]>, bool> done, string what)
    {
        int n = 0;
        var layers = gateway.Model.Config.MoeLayers.ToList();
        string State(IReadOnlyDictionary<string, string[]> sets) =>
            $"after {n} rounds, copies of the hot expert per layer: {string.Join(", ", layers.Select(l => $"{l}: {Copies(sets, l)}"))}; "
            + $"changes so far: {MoeMetrics.ReplicationChanges.WithLabels("add").Value} added, {MoeMetrics.ReplicationChanges.WithLabels("retire").Value} retired";
        await Poll.UntilAsync(async () =>
        {
            var sets = await ReplicaSets(gateway);
            if (done(sets)) return (true, State(sets));
            var finished = await Task.WhenAll(round(n++).Select(r => service.GenerateToEndAsync(r)));
            Assert.All(finished, f => Assert.NotEqual(FinishReason.Error, f.Reason));
            sets = await ReplicaSets(gateway);
            return (done(sets), State(sets));
        }, r => r.Item1, TimeSpan.FromSeconds(90), what);
    }

    static async Task<IGenerationService> ReplicateHotExperts(InProcessNode[] nodes)
    {
        var service = await nodes[0].WaitUntilReadyAsync();
        var layers = nodes[0].Model.Config.MoeLayers.ToList();
        await DriveUntil(service, nodes[0], n => WarmRequests($"warm{n}"),
            sets => layers.All(l => Copies(sets, l) == 3),
            "the hot expert of every layer replicated on all three nodes");
        return service;
    }

    [Fact]
    public void The_skewed_checkpoint_sends_half_of_the_hot_tokens_assignments_to_one_expert_and_none_of_the_cold()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        SkewedRouting.Apply(model, HotExpert, IsHot);
        var hot = SkewedRouting.ShareOf(model, HotExpert, Enumerable.Range(2, 40).ToArray());
        var cold = SkewedRouting.ShareOf(model, HotExpert, Enumerable.Range(50, 40).ToArray());
        // Top-2 routing: an expert in every token's top-2 receives exactly half of the assignments.
        Assert.All(hot.Values, share => Assert.InRange(share, 0.45, 0.5));
        Assert.All(cold.Values, share => Assert.InRange(share, 0.0, 0.05));
    }

    [Fact]
    public async Task A_hot_expert_gets_replicas_on_the_other_nodes_which_compute_its_tokens_and_greedy_output_stays_the_single_process_output()
    {
        var checkpoint = SkewedCheckpoint();
        var check = HotRequests("check");
        var expected = SingleProcess(checkpoint, check);
        var nodes = await StartCluster(checkpoint);
        try
        {
            var service = await ReplicateHotExperts(nodes);
            var addresses = nodes.Select(n => n.Options.SelfAddress).ToList();
            var sets = await ReplicaSets(nodes[0]);
            Assert.Equal(addresses.Order(), sets[Hot(0)].Order());
            var before = addresses.ToDictionary(a => a, a => MoeMetrics.ReplicaTokens.WithLabels(a).Value);

            foreach (var r in check)
                Assert.Equal(expected[r.Id], (await service.GenerateToEndAsync(r with { Id = r.Id + "-alone" })).Generated);
            var together = await Task.WhenAll(check.Select(r => service.GenerateToEndAsync(r)));
            foreach (var f in together) Assert.Equal(expected[f.RequestId], f.Generated);

            // Two of the three copies of each hot expert are redundant replicas; both nodes holding them computed rows.
            var primaries = await PlacementView.ExpertNodesAsync(nodes[0]);
            var replicaNodes = addresses.Where(a => a != primaries[Hot(0)]).ToList();
            Assert.All(replicaNodes, a => Assert.True(MoeMetrics.ReplicaTokens.WithLabels(a).Value > before[a], $"no replica rows computed on {a}"));
            Assert.True(MoeMetrics.ReplicationChanges.WithLabels("add").Value >= 2);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    [Fact]
    public async Task Replicas_of_an_expert_retire_when_its_load_falls()
    {
        var checkpoint = SkewedCheckpoint();
        var nodes = await StartCluster(checkpoint);
        try
        {
            var service = await ReplicateHotExperts(nodes);
            var layers = nodes[0].Model.Config.MoeLayers.ToList();
            // Cold tokens never pick the hot expert: once the window holds only them, its replicas go.
            await DriveUntil(service, nodes[0], n => ColdRequests($"cold{n}"),
                sets => layers.All(l => Copies(sets, l) == 1),
                "the hot expert's redundant replicas retired");
            Assert.True(MoeMetrics.ReplicationChanges.WithLabels("retire").Value >= layers.Count * 2);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    [Fact]
    public async Task A_node_holding_a_replica_leaves_and_the_replica_set_shrinks_while_requests_keep_succeeding()
    {
        var checkpoint = SkewedCheckpoint();
        var check = HotRequests("check");
        var expected = SingleProcess(checkpoint, check);
        var nodes = await StartCluster(checkpoint);
        var leaver = nodes[2];
        bool left = false;
        try
        {
            var service = await ReplicateHotExperts(nodes);
            var gone = leaver.Options.SelfAddress;
            var during = Task.WhenAll(check.Select(r => service.GenerateToEndAsync(r with { Id = r.Id + "-during" })));
            left = true;
            await leaver.DisposeAsync();   // graceful leave: coordinated shutdown hands its primaries off

            await Poll.UntilAsync(async () =>
            {
                var sets = await ReplicaSets(nodes[0]);
                return sets.TryGetValue(Hot(0), out var hot) && hot.Length >= 1 && sets.Values.All(s => !s.Contains(gone));
            }, TimeSpan.FromSeconds(60), "the leaving node dropped out of every replica set");
            foreach (var f in await during) Assert.Equal(expected[f.RequestId[..^"-during".Length]], f.Generated);
            var after = await Task.WhenAll(check.Select(r => service.GenerateToEndAsync(r)));
            foreach (var f in after) Assert.Equal(expected[f.RequestId], f.Generated);
        }
        finally
        {
            if (!left) await leaver.DisposeAsync();
            await nodes[1].DisposeAsync();
            await nodes[0].DisposeAsync();
        }
    }
}
