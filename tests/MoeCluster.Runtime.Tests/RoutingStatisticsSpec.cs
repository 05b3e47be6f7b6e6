using Akka.Actor;
using Akka.Hosting;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Placement;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Routing;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>A gateway's routing statistics are what the offline profiler computes from the same tokens.</summary>
public class RoutingStatisticsSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };

    [Fact]
    public async Task A_gateway_counts_the_routing_the_offline_profiler_computes_for_the_tokens_it_served()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching, MinExpertNodes = 2 };
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 3,
            i => i == 0 ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] } : runtime with { Roles = [NodeRoles.Expert] });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            GenerationRequest[] requests = [new("a", [4, 8, 15, 16, 23, 42], 9), new("b", Enumerable.Range(30, 20).ToArray(), 6), new("c", [7], 12)];
            var finished = await Task.WhenAll(requests.Select(r => service.GenerateToEndAsync(r)));

            var gateway = nodes[0].Registry.Get<GatewayKey>();
            var statistics = await nodes[0].System.ActorSelection(gateway.Path.Child(RoutingStatisticsActor.Name)).ResolveOne(TimeSpan.FromSeconds(5));
            // The gateway reports a step after answering it: wait until every fed token is counted.
            var fed = requests.Zip(finished, (r, f) => r.PromptTokens.Concat(f.Generated.SkipLast(1)).ToArray()).ToList();
            RoutingSnapshot online = null!;
            await Poll.UntilAsync(async () => (online = await statistics.Ask<RoutingSnapshot>(new GetRoutingStatistics(), TimeSpan.FromSeconds(5))).Tokens == fed.Sum(s => s.Length), TimeSpan.FromSeconds(10));

            var offline = RoutingProfiler.Profile(model, fed.Select(s => (IReadOnlyList<int>)s).ToList());
            foreach (var (on, off) in online.Layers.Zip(offline.Layers))
            {
                Assert.Equal(off.Load, on.Load);
                Assert.Equal(off.Coactivation.SelectMany(r => r), on.Coactivation.SelectMany(r => r));
                Assert.Equal(off.NextLayerCoactivation?.SelectMany(r => r), on.NextLayerCoactivation?.SelectMany(r => r));
                Assert.Equal(off.Transitions, on.Transitions);
                Assert.Equal(off.Fluctuation, on.Fluctuation, 9);
                Assert.Equal(off.MeanEntropy, on.MeanEntropy, 4);
                // Experts of a token span 1 or 2 of the two expert nodes, and the gateway knows where they live.
                Assert.InRange(on.NodesPerToken!.Value, 1.0, 2.0);
                Assert.InRange(on.ColocatedPairShare!.Value, 0.0, 1.0);
            }
            Assert.Equal(fed.Sum(s => s.Length - 1), online.Layers[0].Transitions);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }
}
