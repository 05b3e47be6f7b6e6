using System.Diagnostics;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Runtime.Tests;

/// <summary>Faults injected into every actor on the token path of a three-node cluster (gateway + attention node, two
/// expert nodes, every expert call crossing the network): a fault that strikes once costs one quick retry and changes no
/// token; a fault that strikes every attempt fails only the sequence whose tokens reach the faulty expert. Recovery
/// takes well under the step timeout (60 s) and the expert timeout (30 s): nothing waits for a timeout.</summary>
public sealed class FaultRecoverySpec(ITestOutputHelper output)
{
    const int HotExpert = 2;
    static bool IsHot(int token) => token < 48;
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 32 };

    [Fact]
    public async Task Injected_faults_are_answered_at_once_retried_without_changing_a_token_and_a_persistent_one_fails_only_its_sequence()
    {
        string checkpoint;
        using (var m = TinyModels.Random(Architecture.Mixtral))
        {
            SkewedRouting.Apply(m, HotExpert, IsHot);   // cold tokens never pick the hot expert
            checkpoint = TinyCheckpoint.Write(m);
        }
        var faults = new FaultInjector();
        var runtime = new RuntimeOptions
        {
            ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2, Faults = faults,
            StepTimeout = TimeSpan.FromSeconds(60), ExpertTimeout = TimeSpan.FromSeconds(30),
        };
        GenerationRequest Request(string id, int[] prompt, int tokens) => new(id, prompt, tokens);
        var probe = Request("probe", [4, 8, 15, 16, 23, 42], 8);
        var expected = Reference(checkpoint, probe);

        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] } : runtime with { Roles = [NodeRoles.Expert] });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var clock = Stopwatch.StartNew();
            var baseline = await service.GenerateToEndAsync(probe with { Id = "baseline" });
            Assert.Equal(expected, baseline.Generated);
            output.WriteLine($"no fault: {clock.Elapsed.TotalMilliseconds:0} ms for {probe.MaxTokens} tokens");
            double retriesBefore = MoeMetrics.StepRetries.WithLabels("fault").Value;

            foreach (var site in Enum.GetValues<FaultSite>())
            {
                int fired = faults.Fired;
                faults.Arm(site);
                clock.Restart();
                var f = await service.GenerateToEndAsync(probe with { Id = $"fault-{site}" });
                output.WriteLine($"one fault in {site}: {clock.Elapsed.TotalMilliseconds:0} ms, {f.Reason}, same tokens: {expected.SequenceEqual(f.Generated)}");
                Assert.Equal(fired + 1, faults.Fired);
                Assert.Equal(FinishReason.Length, f.Reason);
                Assert.Equal(expected, f.Generated);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"{site}: {clock.Elapsed} (a timeout would take 30 s or more)");
            }
            Assert.True(MoeMetrics.StepRetries.WithLabels("fault").Value >= retriesBefore + Enum.GetValues<FaultSite>().Length);

            // The hot expert of layer 0 fails every time: the hot request fails with an error naming it, the cold one
            // sharing its step is retried without it and completes with the single-process token.
            var cold = Request("cold", [50, 60, 70, 80], 1);
            var coldExpected = Reference(checkpoint, cold);
            faults.Arm(FaultSite.Expert, int.MaxValue, target: $"L0.E{HotExpert}");
            clock.Restart();
            var both = await Task.WhenAll(
                service.GenerateToEndAsync(Request("hot", [4, 8, 15, 16], 1)),
                service.GenerateToEndAsync(cold));
            faults.Disarm();
            output.WriteLine($"persistent fault in L0.E{HotExpert}: hot {both[0].Reason} ({both[0].Error}), cold {both[1].Reason}, in {clock.Elapsed.TotalMilliseconds:0} ms");
            Assert.Equal(FinishReason.Error, both[0].Reason);
            Assert.Contains($"L0.E{HotExpert}", both[0].Error);
            Assert.Equal(FinishReason.Length, both[1].Reason);
            Assert.Equal(coldExpected, both[1].Generated);
            Assert.Equal(expected, (await service.GenerateToEndAsync(probe with { Id = "after" })).Generated);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    static IReadOnlyList<int> Reference(string checkpoint, GenerationRequest r)
    {
        using var model = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32);
        using var engine = new LocalEngine(model, Batching);
        return engine.Run([r])[r.Id].Generated;
    }
}
