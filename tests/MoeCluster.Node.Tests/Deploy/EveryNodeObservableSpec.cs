using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using MoeCluster.Model;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Deploy;

/// <summary>Issue 10.1: an expert-only node is a first-class process — it serves /healthz, a /readyz that means
/// "joined and loaded the experts placed here", /metrics with its own expert series, and the same API-key rule as a
/// gateway (probes and /metrics open, everything under /v1 behind the key, /v1/cluster/* included).</summary>
public sealed class EveryNodeObservableSpec(ITestOutputHelper output)
{
    const string Key = "sk-every-node-1";

    [Fact]
    public async Task An_expert_only_node_serves_probes_its_own_metrics_and_guards_v1_with_the_key()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-every-node", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var keys = Path.Combine(dir, "keys");
        File.WriteAllText(keys, Key + "\n");
        int gp = FreePorts.Next(), gh = FreePorts.Next(), ep = FreePorts.Next(), eh = FreePorts.Next();
        var seed = $"akka.tcp://moecluster@127.0.0.1:{gp}";
        string[] flags = ["--threads", "1", "--max-batch-size", "4", "--context-length", "64", "--api-keys-file", keys];
        using var gateway = NodeProcess.Serve("gateway", checkpoint, "gateway,attention", gp, gh, seed, Path.Combine(dir, "g"), Path.Combine(dir, "gateway.log"), flags);
        using var expert = NodeProcess.Serve("expert", checkpoint, "expert", ep, eh, seed, Path.Combine(dir, "e"), Path.Combine(dir, "expert.log"), flags);
        using var open = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var keyed = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        keyed.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        try
        {
            await expert.WaitForAsync(open, "healthz", TimeSpan.FromSeconds(120));
            await expert.WaitForAsync(open, "readyz", TimeSpan.FromSeconds(120));
            await gateway.WaitForAsync(open, "readyz", TimeSpan.FromSeconds(120));

            var ready = JsonNode.Parse(await open.GetStringAsync(new Uri(expert.BaseAddress, "readyz")))!;
            Assert.Equal("ready", ready["status"]!.GetValue<string>());
            Assert.Contains("experts loaded", ready["detail"]!.GetValue<string>());

            // One request through the cluster: the expert node computes rows and receives activations.
            var name = JsonNode.Parse(await keyed.GetStringAsync(new Uri(gateway.BaseAddress, "v1/models")))!["data"]![0]!["id"]!.GetValue<string>();
            using var real = await keyed.PostAsync(new Uri(gateway.BaseAddress, "v1/completions"),
                new StringContent($$"""{"model":"{{name}}","prompt":[4,8,15],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, real.StatusCode);

            var metrics = await open.GetStringAsync(new Uri(expert.BaseAddress, "metrics"));
            Assert.True(Value(metrics, "moecluster_experts_hosted") > 0, "the expert node exports the experts it hosts");
            Assert.True(Value(metrics, "moecluster_expert_weights_resident_bytes") > 0, "the expert node exports resident weight bytes");
            Assert.Equal(0, Value(metrics, "moecluster_experts_loading"));
            Assert.True(Sum(metrics, "moecluster_expert_computed_rows_total") > 0, "rows computed per expert");
            Assert.True(Sum(metrics, "moecluster_expert_compute_duration_seconds_count") > 0, "expert compute time");
            Assert.True(Value(metrics, "moecluster_remote_activation_messages_total{direction=\"received\"}") > 0, "messages received");
            Assert.True(Value(metrics, "moecluster_remote_activation_bytes_total{direction=\"sent\"}") > 0, "bytes sent");
            Assert.Contains("moecluster_expert_host_in_flight", metrics);
            // The gateway exports no expert compute of its own: the series are the node's own.
            var gatewayMetrics = await open.GetStringAsync(new Uri(gateway.BaseAddress, "metrics"));
            Assert.Equal(0, Sum(gatewayMetrics, "moecluster_expert_computed_rows_total"));
            Assert.Equal(0, Value(gatewayMetrics, "moecluster_experts_hosted"));

            foreach (var node in new[] { expert, gateway })
            {
                using var members = await open.GetAsync(new Uri(node.BaseAddress, "v1/cluster/members"));
                Assert.Equal(HttpStatusCode.Unauthorized, members.StatusCode);
                using var withKey = await keyed.GetAsync(new Uri(node.BaseAddress, "v1/cluster/members"));
                Assert.Equal(HttpStatusCode.OK, withKey.StatusCode);
                using var unknown = await keyed.GetAsync(new Uri(node.BaseAddress, "v1/nothing-here"));
                Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
                Assert.Contains("unknown_url", await unknown.Content.ReadAsStringAsync());
            }
            // An expert node serves no completions: a clear 404, not a hang.
            using var notServed = await keyed.PostAsync(new Uri(expert.BaseAddress, "v1/completions"), new StringContent("{}"));
            Assert.Equal(HttpStatusCode.NotFound, notServed.StatusCode);
        }
        catch (Exception) { output.WriteLine(gateway.Tail()); output.WriteLine(expert.Tail()); throw; }
    }

    /// <summary>The value of one unlabelled (or exactly labelled) series in Prometheus text, or -1 when absent.</summary>
    internal static double Value(string metrics, string series) =>
        metrics.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).First();

    /// <summary>The sum over every label set of a series.</summary>
    internal static double Sum(string metrics, string name) =>
        metrics.Split('\n').Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
}
