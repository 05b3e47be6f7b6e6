using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>The cluster must produce exactly the tokens the single-process model core produces.</summary>
public class ClusterEquivalenceSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };

    static readonly GenerationRequest[] Requests =
    [
        new("short", [4, 8], 10),
        new("long", Enumerable.Range(10, 21).ToArray(), 7),
        new("mid", [50, 51, 52, 53, 54, 55, 56], 12),
    ];

    static Dictionary<string, IReadOnlyList<int>> SingleProcess(string checkpoint)
    {
        using var model = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32);
        var result = new Dictionary<string, IReadOnlyList<int>>();
        foreach (var r in Requests)
        {
            using var engine = new LocalEngine(model, Batching);
            result[r.Id] = engine.Run([r])[r.Id].Generated;
        }
        return result;
    }

    static async Task AssertSameTokens(IReadOnlyList<InProcessNode> nodes, string checkpoint)
    {
        var expected = SingleProcess(checkpoint);
        var service = await nodes[0].WaitUntilReadyAsync();
        // Alone, one after another…
        foreach (var r in Requests)
        {
            var f = await service.GenerateToEndAsync(r with { Id = r.Id + "-alone" });
            Assert.Equal(FinishReason.Length, f.Reason);
            Assert.Equal(expected[r.Id], f.Generated);
        }
        // …and concurrently, batched together.
        var together = await Task.WhenAll(Requests.Select(r => service.GenerateToEndAsync(r)));
        foreach (var f in together) Assert.Equal(expected[f.RequestId], f.Generated);
    }

    [Theory]
    [InlineData(Architecture.Mixtral)]
    [InlineData(Architecture.Qwen2Moe)]
    public async Task A_one_node_cluster_generates_the_single_process_tokens(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var checkpoint = TinyCheckpoint.Write(model);
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching }, 1);
        try { await AssertSameTokens(nodes, checkpoint); }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    [Theory]
    [InlineData(Architecture.Mixtral)]
    [InlineData(Architecture.Qwen2Moe)]
    public async Task A_three_node_cluster_of_separate_actor_systems_generates_the_single_process_tokens(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var checkpoint = TinyCheckpoint.Write(model);
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2 };
        // Node 0: gateway + attention; nodes 1 and 2: experts only, so every expert call crosses the network.
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] } : runtime with { Roles = [NodeRoles.Expert] });
        try
        {
            await AssertSameTokens(nodes, checkpoint);
            var hosts = await PlacementView.NodesHostingExpertsAsync(nodes[0]);
            Assert.Equal(2, hosts.Count);   // spread over both expert nodes
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    [Fact]
    public async Task Sampling_controls_logprobs_prompt_scoring_and_priority_act_the_same_through_the_cluster_gateway()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        GenerationRequest[] requests =
        [
            new("penalised", [4, 8, 4, 8], 10) { Sampling = new SamplingOptions { Temperature = 0.9, Seed = 7, FrequencyPenalty = 1, PresencePenalty = 0.5, RepetitionPenalty = 1.2, MinP = 0.05 }, Logprobs = 3 },
            new("biased", Enumerable.Range(10, 21).ToArray(), 7) { Sampling = SamplingOptions.GreedyDecoding with { LogitBias = new Dictionary<int, float> { [3] = 5 }, MinTokens = 3 }, StopTokenIds = [3], PromptLogprobs = 2, Logprobs = 0 },
            new("low", [50, 51, 52], 12) { Sampling = new SamplingOptions { Temperature = 1.1, TopK = 8, TopP = 0.9, Seed = 3 }, Priority = 5 },
        ];
        var expected = new Dictionary<string, List<GenerationEvent>>();
        using (var reference = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32))
            foreach (var r in requests)
            {
                using var engine = new LocalEngine(reference, Batching);
                var events = new List<GenerationEvent>();
                engine.Run([r], events.Add);
                expected[r.Id] = events;
            }
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching }, 1);
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var actual = await Task.WhenAll(requests.Select(async r =>
            {
                var events = new List<GenerationEvent>();
                await foreach (var e in service.GenerateAsync(r)) events.Add(e);
                return (r.Id, events);
            }));
            foreach (var (id, events) in actual)
            {
                Assert.Equal(expected[id].OfType<SequenceFinished>().Single().Generated, events.OfType<SequenceFinished>().Single().Generated);
                var want = expected[id].OfType<TokenGenerated>().Select(t => t.Logprob).ToList();
                var got = events.OfType<TokenGenerated>().Select(t => t.Logprob).ToList();
                Assert.Equal(want.Count, got.Count);
                for (int i = 0; i < want.Count; i++)
                {
                    Assert.Equal(want[i] is null, got[i] is null);
                    if (want[i] is null) continue;
                    // A tolerance, not rounding to 3 decimals: rounding failed a 1.4e-6 difference that straddled
                    // -2.4305, and let through differences of almost 1e-3; this bound is half of that.
                    Assert.Equal(want[i]!.Logprob, got[i]!.Logprob, 5e-4);
                    Assert.Equal(want[i]!.Top.Select(a => a.Token), got[i]!.Top.Select(a => a.Token));
                }
                Assert.Equal(expected[id].OfType<PromptTokensScored>().SelectMany(s => s.Logprobs).Select(l => l.Token),
                    events.OfType<PromptTokensScored>().SelectMany(s => s.Logprobs).Select(l => l.Token));
            }
            Assert.Equal(20, actual.Single(a => a.Id == "biased").events.OfType<PromptTokensScored>().Sum(s => s.Logprobs.Count));
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }
}
