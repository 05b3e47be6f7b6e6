using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;
using MoeCluster.Placement;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Routing;
using MoeCluster.TestSupport;

namespace MoeCluster.Node.Tests;

/// <summary>A node started as `serve` starts it shows its placement strategy, serves its routing statistics as JSON and
/// exports them to Prometheus.</summary>
public class ClusterRoutingEndpointsSpec
{
    [Fact]
    public async Task A_coactivation_node_shows_its_strategy_and_serves_routing_statistics_over_HTTP_and_metrics()
    {
        using var model = new TinyServingModel();
        var profile = Path.Combine(model.Directory, "routing-profile.json");
        File.WriteAllText(profile, RoutingProfiler.Profile(model.Model, [Enumerable.Range(1, 30).ToArray()]).ToJson());
        int port = FreePorts.Next(), httpPort = FreePorts.Next();
        var app = NodeHost.Build(new ServeOptions
        {
            HttpHost = "127.0.0.1", HttpPort = httpPort, DataDirectory = ServingHost.TempDirectory(),
            Cluster = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = port, SeedNodes = [$"akka.tcp://{ClusterNodeOptions.ActorSystemName}@127.0.0.1:{port}"], LogLevel = "WARNING" },
            Runtime = new RuntimeOptions { ModelDirectory = model.Directory, Batching = TinyServingModel.Batching, Placement = "coactivation", RoutingProfile = profile },
        }, _ => { });
        await app.StartAsync();
        try
        {
            var service = app.Services.GetRequiredService<IGenerationService>();
            await Poll.UntilAsync(async () => (await service.GetStatusAsync()).Ready, TimeSpan.FromSeconds(60), "node ready");
            var done = await service.GenerateToEndAsync(new GenerationRequest("r", [5, 6, 7, 8], 6));
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}/") };

            var placement = JsonNode.Parse(await http.GetStringAsync("v1/cluster/placement"))!;
            Assert.Equal("coactivation", placement["strategy"]!.GetValue<string>());
            Assert.Equal(profile, placement["routing_profile"]!.GetValue<string>());
            Assert.Equal(1.0, placement["colocated_pair_share"]!.GetValue<double>());   // one node holds every pair

            RoutingSnapshot routing = null!;
            await Poll.UntilAsync(async () => (routing = RoutingSnapshot.Parse(await http.GetStringAsync("v1/cluster/routing"))).Tokens == 4 + done.Generated.Count - 1,
                TimeSpan.FromSeconds(10), "the request's tokens counted");
            Assert.All(routing.Layers, l => Assert.Equal(1.0, l.NodesPerToken));

            await Poll.UntilAsync(async () => (await http.GetStringAsync("metrics")).Contains("moecluster_routing_entropy{layer=\"0\"}"), TimeSpan.FromSeconds(10), "routing gauges exported");
            Assert.Contains("moecluster_expert_coactivation_tokens{", await http.GetStringAsync("metrics"));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
