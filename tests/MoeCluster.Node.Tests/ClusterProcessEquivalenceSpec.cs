using System.Text.Json.Nodes;
using MoeCluster.Model;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests;

/// <summary>Issue 3: three separate `moecluster serve` processes on loopback (node 0 gateway + attention, nodes 1 and
/// 2 experts) give exactly the token ids of the single-process model core, and `moecluster generate --gateway` prints
/// what `moecluster generate --model` prints.</summary>
public sealed class ClusterProcessEquivalenceSpec(ITestOutputHelper output)
{
    const int MaxTokens = 12;

    static readonly int[][] Prompts = [[4, 8], Enumerable.Range(10, 21).ToArray(), [50, 51, 52, 53, 54, 55, 56]];

    [Theory]
    [InlineData(Architecture.Mixtral)]
    [InlineData(Architecture.Qwen2Moe)]   // a shared expert and a dense layer
    public async Task Three_moecluster_processes_generate_the_single_process_tokens(Architecture architecture)
    {
        using var model = TinyModels.Random(architecture);
        var checkpoint = TinyCheckpoint.Write(model);
        using var reference = new ClusterReference(checkpoint);
        await using var cluster = await ClusterOfProcesses.StartAsync(checkpoint, output: output);
        await cluster.WithDiagnosticsAsync(async () =>
        {
            var placement = await cluster.PlacementAsync();
            Assert.Equal(new[] { cluster.AddressOf(1), cluster.AddressOf(2) }.Order(), placement.Values.Distinct().Order());   // spread

            foreach (var p in Prompts)   // alone, one after another
                Assert.Equal(reference.Tokens(p, MaxTokens), await cluster.GenerateAsync(p, MaxTokens));
            var together = await Task.WhenAll(Prompts.Select(p => cluster.GenerateAsync(p, MaxTokens)));
            for (int i = 0; i < Prompts.Length; i++) Assert.Equal(reference.Tokens(Prompts[i], MaxTokens), together[i]);

            // The CLI against the cluster and in one process: same JSON token ids.
            var ids = string.Join(",", Prompts[2]);
            var remote = await GenerateCliAsync("--gateway", cluster.Gateway.BaseAddress.ToString(), "--token-ids", ids);
            var local = await GenerateCliAsync("--model", checkpoint, "--token-ids", ids);
            Assert.Equal(reference.Tokens(Prompts[2], MaxTokens), local);
            Assert.Equal(local, remote);
        });
    }

    static async Task<IReadOnlyList<int>> GenerateCliAsync(params string[] source)
    {
        var (exit, stdout, stderr) = await NodeProcess.RunAsync(
            ["generate", .. source, "--greedy", "--max-tokens", MaxTokens.ToString(), "--output", "json"], TimeSpan.FromSeconds(180));
        Assert.True(exit == 0, $"moecluster generate {string.Join(' ', source)} exited with {exit}: {stderr}");
        var json = JsonNode.Parse(stdout.Trim().Split('\n').Last())!;
        return json["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
    }
}
