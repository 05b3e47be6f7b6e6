using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Generation;
using MoeCluster.Node;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;

namespace MoeCluster.Bench.Shared;

/// <summary>A cluster of production node hosts (<see cref="NodeHost"/>) in this process, one ActorSystem per node on
/// loopback ports, node 0 the seed and the gateway; for benchmarks that compare settings side by side in one run.</summary>
public sealed class LoopbackCluster : IAsyncDisposable
{
    readonly List<WebApplication> apps;
    readonly int basePort;

    LoopbackCluster(List<WebApplication> apps, int basePort)
    {
        this.apps = apps;
        this.basePort = basePort;
    }

    public IGenerationService Service => apps[0].Services.GetRequiredService<IGenerationService>();

    public T Get<T>(int node) where T : notnull => apps[node].Services.GetRequiredService<T>();

    /// <summary>Base URL of node <paramref name="node"/>'s HTTP API.</summary>
    public Uri Http(int node) => new($"http://127.0.0.1:{basePort + 10 + node}/");

    /// <summary>Starts one node per entry of <paramref name="roles"/> and waits until the gateway is ready;
    /// <paramref name="wireDType"/> is every node's <c>--wire-dtype</c> (null: activations travel as computed).</summary>
    public static async Task<LoopbackCluster> StartAsync(int basePort, IReadOnlyList<string[]> roles, Func<int, RuntimeOptions> runtime, string? wireDType = null)
    {
        var seed = $"akka.tcp://{ClusterNodeOptions.ActorSystemName}@127.0.0.1:{basePort}";
        var apps = new List<WebApplication>();
        for (int i = 0; i < roles.Count; i++)
        {
            var app = NodeHost.Build(new ServeOptions
            {
                HttpHost = "127.0.0.1", HttpPort = basePort + 10 + i, DataDirectory = Path.Combine(Path.GetTempPath(), $"moecluster-bench-{basePort}-{i}"),
                Cluster = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = basePort + i, SeedNodes = [seed], LogLevel = "WARNING", WireDType = wireDType },
                Runtime = runtime(i) with { Roles = roles[i] },
            }, _ => { });
            await app.StartAsync();
            apps.Add(app);
        }
        var cluster = new LoopbackCluster(apps, basePort);
        while (!(await cluster.Service.GetStatusAsync()).Ready) await Task.Delay(100);
        return cluster;
    }

    /// <summary>Runs <paramref name="requests"/> concurrently to the end: each request's generated tokens.</summary>
    public async Task<Dictionary<string, IReadOnlyList<int>>> GenerateAsync(IReadOnlyList<GenerationRequest> requests)
    {
        var service = Service;
        var done = await Task.WhenAll(requests.Select(async r =>
        {
            await foreach (var e in service.GenerateAsync(r))
                if (e is SequenceFinished f)
                    return f.Reason is FinishReason.Length or FinishReason.Stop ? (r.Id, f.Generated) : throw new InvalidOperationException($"{r.Id}: {f.Reason} {f.Error}");
            throw new InvalidOperationException($"{r.Id} did not finish");
        }));
        return done.ToDictionary(d => d.Id, d => d.Generated);
    }

    /// <summary>The gateway first: stopped expert nodes would leave it retrying their experts while it shuts down.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var app in apps) { await app.StopAsync(); await app.DisposeAsync(); }
    }
}
