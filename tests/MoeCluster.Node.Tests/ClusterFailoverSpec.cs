using MoeCluster.Model;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests;

/// <summary>Issue 5, node failure: `kill -9` of an expert node under a steady stream of greedy requests loses no
/// accepted request and changes no token; its experts are re-homed on the survivor; a new process at the same address
/// rejoins and takes experts again. Timings print to the test output (docs/BENCHMARKS.md quotes them).</summary>
public sealed class ClusterFailoverSpec(ITestOutputHelper output)
{
    const int ExpertCount = 12;   // tiny Mixtral: 2 layers × 6 experts
    static readonly TimeSpan Recovery = TimeSpan.FromSeconds(150);

    [Fact]
    public async Task Kill_9_of_an_expert_node_under_load_loses_no_request_and_changes_no_token()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        using var reference = new ClusterReference(checkpoint);
        foreach (var p in ClusterLoad.Prompts) reference.Tokens(p, ClusterLoad.MaxTokens);
        await using var cluster = await ClusterOfProcesses.StartAsync(checkpoint, output: output);
        await cluster.WithDiagnosticsAsync(async () =>
        {
            // Node 1 joined first, so it is the oldest expert node and runs the expert shard coordinator: killing it
            // also moves the coordinator, the slower case.
            var before = await cluster.PlacementAsync();
            cluster.Log($"placement before: {ClusterOfProcesses.Describe(before)}");
            string victim = cluster.AddressOf(1), survivor = cluster.AddressOf(2);
            Assert.Contains(victim, before.Values);

            var load = new ClusterLoad(cluster).Start(clients: 6);
            await load.WaitForCompletionsAsync(30, Recovery);              // warmed up
            double windowStart = load.Now;
            await load.WaitForCompletionsAsync(150, Recovery);             // the pre-kill rate, over 150 requests
            double killAt = load.Now, rate = load.Rate(windowStart, killAt);
            cluster.Kill(1);
            double deadAt = load.Now;   // Kill returns once the process has exited; requests keep finishing until then
            cluster.Log($"kill -9 node 1 at t={killAt:0.0}s, exited at t={deadAt:0.0}s (pre-kill rate {rate:0.0} requests/s)");

            await cluster.WaitUntilPlacementAsync(p => p.Values.All(n => n == survivor), ExpertCount, Recovery, "every expert re-homed on the survivor");
            double rehomedAt = load.Now;
            await Poll.UntilAsync(() => load.FirstSecondAtRate(killAt, rate, 0.9) is not null, Recovery, "throughput back to 90% of the pre-kill rate");
            await load.WaitForCompletionsAsync(60, Recovery);
            await load.StopAsync();

            int full = load.FirstSecondAtRate(killAt, rate, 0.9)!.Value;
            cluster.Log($"experts re-homed {rehomedAt - killAt:0.0}s after the kill; full throughput (>=90% of {rate:0.0}/s) in the second starting {full - killAt:0.0}s after it");
            cluster.Log($"completions per second (0 = the second of the kill): {load.DescribeTimeline(killAt)}");
            cluster.Log($"{load.Completed} requests completed, {load.Failures.Count} failed; longest latency {load.Completions.Max(c => c.LatencySeconds):0.0}s");

            Assert.Empty(load.Problems(reference));
            // Requests in flight at the kill (their expert calls went to the dead node) finished after the re-homing.
            Assert.Contains(load.Completions, c => c.AtSeconds - c.LatencySeconds < deadAt && c.AtSeconds > deadAt + 1);
            var metrics = await cluster.Http.GetStringAsync(new Uri(cluster.Gateway.BaseAddress, "metrics"));
            Assert.Contains("moecluster_recoveries_total{kind=\"node_removed\"}", metrics);
        });
    }

    [Fact]
    public async Task A_killed_expert_node_restarted_at_the_same_address_rejoins_and_takes_experts_again()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        using var reference = new ClusterReference(checkpoint);
        await using var cluster = await ClusterOfProcesses.StartAsync(checkpoint, output: output);
        await cluster.WithDiagnosticsAsync(async () =>
        {
            string comeback = cluster.AddressOf(2), survivor = cluster.AddressOf(1);
            cluster.Kill(2);
            await cluster.WaitUntilMemberAsync(comeback, null, Recovery);
            await cluster.WaitUntilPlacementAsync(p => p.Values.All(n => n == survivor), ExpertCount, Recovery, "every expert on the survivor");

            var load = new ClusterLoad(cluster).Start(clients: 4);
            double restartAt = load.Now;
            cluster.Restart(2);
            await cluster.WaitUntilMemberAsync(comeback, "up", Recovery);
            double upAt = load.Now;
            await cluster.WaitUntilPlacementAsync(p => p.Values.Count(n => n == comeback) == ExpertCount / 2, ExpertCount, Recovery,
                "the restarted node holding half of the experts again");
            double balancedAt = load.Now;
            await load.WaitForCompletionsAsync(40, Recovery);
            await load.StopAsync();
            cluster.Log($"restarted node up {upAt - restartAt:0.0}s after its start, holding {ExpertCount / 2} experts {balancedAt - upAt:0.0}s later; " +
                        $"{load.Completed} requests completed meanwhile, longest {load.Completions.Max(c => c.LatencySeconds):0.0}s");
            Assert.Empty(load.Problems(reference));
            Assert.Contains(load.Completions, c => c.AtSeconds > balancedAt);
        });
    }
}
