using MoeCluster.Model;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests;

/// <summary>Issue 5, elastic membership, with separate processes under a steady stream of greedy requests: a joining
/// expert node takes over a fair share of experts (the placement listing shows exactly those moves), and the same
/// node leaving on SIGTERM hands them back; no request fails, every answer has the single-process tokens, and the
/// leave logs no ERROR line or stack trace.</summary>
public sealed class ClusterMembershipSpec(ITestOutputHelper output)
{
    const int ExpertCount = 12;
    static readonly TimeSpan Deadline = TimeSpan.FromSeconds(150);

    [Fact]
    public async Task An_expert_node_joining_and_then_leaving_on_SIGTERM_under_load_moves_a_fair_share_without_a_failed_request()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        using var reference = new ClusterReference(checkpoint);
        await using var cluster = await ClusterOfProcesses.StartAsync(checkpoint, output: output);
        await cluster.WithDiagnosticsAsync(async () =>
        {
            var load = new ClusterLoad(cluster).Start(clients: 6);
            await load.WaitForCompletionsAsync(40, Deadline);
            var before = await cluster.PlacementAsync();

            // Join.
            double joinAt = load.Now;
            int joined = await cluster.AddExpertNodeAsync(waitUntilUp: false);
            string node = cluster.AddressOf(joined);
            await cluster.WaitUntilMemberAsync(node, "up", Deadline);
            double upAt = load.Now;
            int servedBefore = load.Completed;
            await cluster.WaitUntilPlacementAsync(p => p.Values.Count(n => n == node) == ExpertCount / 3, ExpertCount, Deadline, "the new node holding a third of the experts");
            double movedAt = load.Now;
            var after = await cluster.PlacementAsync();
            var moved = after.Where(e => before[e.Key] != e.Value).Select(e => e.Key).Order().ToList();
            cluster.Log($"join: up {upAt - joinAt:0.0}s after start; {moved.Count} experts moved ({string.Join(", ", moved)}) within {movedAt - upAt:0.0}s of Up; " +
                        $"{load.Completed - servedBefore} requests served meanwhile; placement {ClusterOfProcesses.Describe(after)}");
            Assert.Equal(ExpertCount / 3, moved.Count);                       // only what the new node takes moves
            Assert.All(moved, id => Assert.Equal(node, after[id]));
            await load.WaitForCompletionsAsync(40, Deadline);

            // Leave: SIGTERM runs coordinated shutdown (hand-off, then leave).
            double leaveAt = load.Now;
            int servedBeforeLeave = load.Completed;
            int gatewayLogBefore = cluster.Gateway.LogLength;
            await cluster.TerminateAsync(joined);
            double exitedAt = load.Now;
            await cluster.WaitUntilPlacementAsync(p => !p.Values.Contains(node), ExpertCount, Deadline, "the leaving node's experts re-homed");
            double rehomedAt = load.Now;
            await load.WaitForCompletionsAsync(40, Deadline);
            await load.StopAsync();
            var final = await cluster.PlacementAsync();
            cluster.Log($"leave: process exited {exitedAt - leaveAt:0.0}s after SIGTERM, its experts listed elsewhere {rehomedAt - leaveAt:0.0}s after it; " +
                        $"{load.Completed - servedBeforeLeave} requests served since the SIGTERM; placement {ClusterOfProcesses.Describe(final)}");
            cluster.Log($"completions per second (0 = the join): {load.DescribeTimeline(joinAt)}");
            cluster.Log($"{load.Completed} requests completed, {load.Failures.Count} failed; longest latency {load.Completions.Max(c => c.LatencySeconds):0.00}s");

            Assert.Empty(load.Problems(reference));
            Assert.Contains(load.Completions, c => c.AtSeconds > leaveAt && c.AtSeconds < rehomedAt + 1);
            Assert.Equal(ExpertCount, final.Count);
            // A clean stop is quiet: no ERROR line or stack trace on the node that left, nor on the gateway meanwhile.
            Assert.Empty(cluster[joined].ErrorLines());
            Assert.Empty(cluster.Gateway.ErrorLines(gatewayLogBefore));
        });
    }
}
