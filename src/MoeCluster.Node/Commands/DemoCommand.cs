using System.CommandLine;
using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Tokenization;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Routing;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster demo`: a three-node cluster on loopback with the built-in model, a few prompts, where the
/// experts that served them live, then the HTTP API until Ctrl+C.</summary>
public static class DemoCommand
{
    static readonly Option<string?> Model = new("--model") { Description = "checkpoint directory (default: the built-in model)" };
    static readonly Option<int> HttpPort = new("--http-port") { Description = "HTTP port of the gateway node", DefaultValueFactory = _ => NodeDefaults.HttpPort };
    static readonly Option<int> Port = new("--port") { Description = "remoting port of the first node; the others use the next two", DefaultValueFactory = _ => NodeDefaults.RemotingPort };
    static readonly Option<int> MaxTokens = new("--max-tokens") { DefaultValueFactory = _ => 40 };
    static readonly Option<bool> Exit = new("--exit") { Description = "exit after the prompts instead of serving" };

    public static readonly string[] Prompts =
    [
        "The best way to predict the future is",
        "A fortune cookie once told me",
        "Never trust a computer",
        "Love is",
    ];

    public static Command Create()
    {
        var c = new Command("demo", "Start a 3-node cluster on loopback with the built-in model, run a few prompts, then serve the API.")
        {
            Model, HttpPort, Port, MaxTokens, Exit,
        };
        c.SetAction(async (p, ct) => await Run(p.GetValue(Model) ?? DefaultModel.Directory(), p.GetValue(Port), p.GetValue(HttpPort), p.GetValue(MaxTokens), p.GetValue(Exit), ct));
        return c;
    }

    /// <summary>Starts the three demo nodes in this process (one ActorSystem each, on loopback ports), node 0 first.</summary>
    public static async Task<List<WebApplication>> StartNodesAsync(string model, int port, int httpPort, CancellationToken ct, bool quiet = false)
    {
        var seed = $"akka.tcp://{ClusterNodeOptions.ActorSystemName}@127.0.0.1:{port}";
        string[][] roles = [[NodeRoles.Gateway, NodeRoles.Attention], [NodeRoles.Expert], [NodeRoles.Expert]];
        var apps = new List<WebApplication>();
        for (int i = 0; i < 3; i++)
        {
            var o = new ServeOptions
            {
                HttpHost = "127.0.0.1", HttpPort = httpPort + i, DataDirectory = Path.Combine(Path.GetTempPath(), $"moecluster-demo-{port}-{i}"),
                Cluster = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = port + i, SeedNodes = [seed], DowningStableAfter = TimeSpan.FromSeconds(5), LogLevel = "WARNING" },
                Runtime = new RuntimeOptions { ModelDirectory = model, Roles = roles[i], ComputeThreads = 1, MinExpertNodes = 2, Batching = new BatchingOptions { MaxBatchSize = 16, ContextLength = 256 } },
            };
            var app = NodeHost.Build(o, i == 0 && !quiet ? Console.Error.WriteLine : _ => { });
            await app.StartAsync(ct);
            apps.Add(app);
            if (!quiet) Console.WriteLine($"node {i}: akka.tcp://moecluster@127.0.0.1:{port + i}  roles [{string.Join(",", roles[i])}]  http://127.0.0.1:{httpPort + i}");
        }
        return apps;
    }

    /// <summary>The demo's requests: each prompt sampled with its own seed, so any deployment gives the same text.</summary>
    public static List<GenerationRequest> Requests(ModelTokenizer tokenizer, int maxTokens) =>
        Prompts.Select((text, i) => new GenerationRequest($"demo-{i}", tokenizer.Encode(text), maxTokens)
        {
            Sampling = new SamplingOptions { Temperature = 0.8, TopP = 0.95, Seed = 1234 + i }, StopTokenIds = tokenizer.EosTokenIds,
        }).ToList();

    static async Task<int> Run(string model, int port, int httpPort, int maxTokens, bool exit, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var apps = new List<WebApplication>();
        try
        {
            apps = await StartNodesAsync(model, port, httpPort, ct);
            var gatewayNode = apps[0].Services;
            var service = gatewayNode.GetRequiredService<IGenerationService>();
            var tokenizer = gatewayNode.GetService<ModelTokenizer>() ?? throw new ArgumentException($"{model} has no tokenizer; the demo needs text");
            while (!(await service.GetStatusAsync(ct)).Ready) await Task.Delay(100, ct);
            Console.WriteLine($"cluster ready in {clock.Elapsed.TotalSeconds:0.0}s\n");

            var requests = Requests(tokenizer, maxTokens);
            var results = await Task.WhenAll(requests.Select(async r =>
            {
                await foreach (var e in service.GenerateAsync(r, ct)) if (e is SequenceFinished f) return (r, f);
                throw new InvalidOperationException("no result");
            }));
            var (bold, plain) = Console.IsOutputRedirected ? ("", "") : ("\x1b[1m", "\x1b[0m");
            foreach (var (r, f) in results)
                Console.WriteLine($"» {Prompts[int.Parse(r.Id[5..])]}{bold}{tokenizer.Decode(f.Generated)}{plain}\n");

            await PrintExpertTraffic(gatewayNode);
            Console.WriteLine($"\nOpenAI-compatible API: http://127.0.0.1:{httpPort}/v1  (metrics: http://127.0.0.1:{httpPort}/metrics)");
            Console.WriteLine($"  curl http://127.0.0.1:{httpPort}/v1/completions -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{Path.GetFileName(model.TrimEnd('/'))}\",\"prompt\":\"Love is\",\"max_tokens\":30}}'");
            if (exit) return 0;
            Console.WriteLine("\nServing until Ctrl+C.");
            var done = new TaskCompletionSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; done.TrySetResult(); };
            await Task.WhenAny(done.Task, Task.Delay(Timeout.Infinite, ct));
            return 0;
        }
        finally
        {
            // The gateway node first: with it gone nobody asks for experts while the expert nodes hand them off and leave.
            foreach (var app in apps) { await app.StopAsync(); await app.DisposeAsync(); }
        }
    }

    /// <summary>Tokens each node's experts computed, from the routers' load windows and the current placement.</summary>
    public static async Task PrintExpertTraffic(IServiceProvider gatewayNode)
    {
        var system = gatewayNode.GetRequiredService<ActorSystem>();
        var registry = gatewayNode.GetRequiredService<ActorRegistry>();
        var placement = (await registry.Get<PlacementWatcherKey>().Ask<PlacementWatcherActor.Placement>(new PlacementWatcherActor.GetPlacement(), TimeSpan.FromSeconds(5))).ExpertNodes;
        var config = gatewayNode.GetRequiredService<Model.ModelConfig>();
        var perNode = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var layer in config.MoeLayers)
        {
            var load = await system.ActorSelection($"/user/{GatewayActor.Name}/router-{layer}").Ask<ExpertLoad>(new GetExpertLoad(), TimeSpan.FromSeconds(5));
            for (int e = 0; e < load.TokensPerExpert.Length; e++)
            {
                var node = placement.GetValueOrDefault(new MoeCluster.Runtime.Protocol.ExpertKey(layer, e).EntityId, "unplaced");
                perNode[node] = perNode.GetValueOrDefault(node) + load.TokensPerExpert[e];
            }
        }
        long total = perNode.Values.Sum();
        Console.WriteLine("expert work by node (token-expert assignments, all MoE layers):");
        foreach (var (node, tokens) in perNode)
            Console.WriteLine($"  {node,-40} {tokens,8}  {100.0 * tokens / Math.Max(1, total),5:0.0}%  ({placement.Count(p => p.Value == node)} experts)");
    }
}
