using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;

namespace MoeCluster.TestSupport;

/// <summary>One cluster node (its own ActorSystem, remoting on a loopback port) built with the production hosting
/// setup, for multi-node tests inside one process.</summary>
public sealed class InProcessNode : IAsyncDisposable
{
    public IHost Host { get; }
    public ClusterNodeOptions Options { get; }
    public ModelSource Model { get; }
    public ActorSystem System => Host.Services.GetRequiredService<ActorSystem>();
    public ActorRegistry Registry => Host.Services.GetRequiredService<ActorRegistry>();

    public RuntimeOptions Runtime { get; }

    InProcessNode(IHost host, ClusterNodeOptions options, RuntimeOptions runtime, ModelSource model)
    {
        Host = host;
        Options = options;
        Runtime = runtime;
        Model = model;
    }

    public static async Task<InProcessNode> StartAsync(string modelDirectory, RuntimeOptions runtime, int port, IReadOnlyList<string> seeds,
        Func<ClusterNodeOptions, ClusterNodeOptions>? configure = null)
    {
        var node = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = port, SeedNodes = seeds, DowningStableAfter = TimeSpan.FromSeconds(3), LogLevel = "WARNING" };
        node = configure?.Invoke(node) ?? node;
        var model = new ModelSource(modelDirectory, ModuleOptions.Parse(runtime.DType, runtime.Device));
        var host = new HostBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .ConfigureServices(s => s.AddAkka(ClusterNodeOptions.ActorSystemName, b => b.AddMoeClusterRuntime(node, runtime with { ModelDirectory = modelDirectory }, model)))
            .Build();
        await host.StartAsync();
        return new InProcessNode(host, node, runtime, model);
    }

    /// <summary>Starts <paramref name="count"/> nodes; the first is the seed of the others.</summary>
    public static async Task<InProcessNode[]> StartClusterAsync(string modelDirectory, RuntimeOptions runtime, int count, Func<int, RuntimeOptions>? perNode = null)
    {
        var ports = Enumerable.Range(0, count).Select(_ => FreePorts.Next()).ToArray();
        var seed = $"akka.tcp://{ClusterNodeOptions.ActorSystemName}@127.0.0.1:{ports[0]}";
        var nodes = new InProcessNode[count];
        for (int i = 0; i < count; i++) nodes[i] = await StartAsync(modelDirectory, perNode?.Invoke(i) ?? runtime, ports[i], [seed]);
        return nodes;
    }

    public IGenerationService GenerationService() =>
        new ClusterGenerationService(System, Registry.Get<GatewayKey>(), Model.Config, Runtime.RequestTimeout);

    /// <summary>Waits (polling, with a deadline) until the gateway reports every layer and expert loaded.</summary>
    public async Task<IGenerationService> WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        var service = GenerationService();
        await Poll.UntilAsync(() => service.GetStatusAsync(), status => status.Ready, timeout ?? TimeSpan.FromSeconds(60), "the gateway to be ready");
        return service;
    }

    public async ValueTask DisposeAsync()
    {
        await Host.StopAsync();
        Host.Dispose();
        Model.Dispose();
    }
}
