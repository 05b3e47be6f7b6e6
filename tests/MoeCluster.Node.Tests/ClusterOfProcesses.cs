using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests;

/// <summary>A cluster of separate `moecluster serve` processes on loopback: node 0 is gateway + attention (and the
/// seed), nodes 1… are expert nodes. Every expert call crosses a process boundary. Each node logs to a file in
/// <see cref="Directory"/>; <see cref="Diagnostics"/> gathers their tails for a failing assertion. Given
/// <see cref="NetworkNamespaces"/>, each node runs in a namespace of its own instead, with remoting on its private
/// address (`--trusted-network`: the network is the test's own), so the test can cut and impair its links.</summary>
public sealed class ClusterOfProcesses : IAsyncDisposable
{
    /// <summary>Flags every node gets: one compute thread each (this machine has 2 cores), a small batch and context,
    /// and the failover timings the tests rely on (production defaults: 20 s, 10 s, 60 s).</summary>
    public static readonly string[] TestFlags =
    [
        "--threads", "1", "--max-batch-size", "8", "--context-length", "64", "--min-expert-nodes", "2",
        "--downing-stable-after", "3", "--expert-timeout", "2", "--step-timeout", "30",
    ];

    /// <summary>Remoting and HTTP ports of a node in a namespace of its own: every node can use the same.</summary>
    const int NamespacePort = 4053, NamespaceHttpPort = 8080;

    static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(180);

    sealed record Slot(string Host, int Port, int Http, string Roles);

    readonly List<NodeProcess?> nodes = new();
    readonly List<Slot> slots = new();
    readonly ITestOutputHelper? output;
    readonly NetworkNamespaces? network;

    public string Model { get; }
    public string Directory { get; }
    public HttpClient Http { get; }
    public NodeProcess Gateway => nodes[0]!;
    public NodeProcess this[int i] => nodes[i] ?? throw new InvalidOperationException($"node {i} is not running");
    public string Seed => AddressOf(0);

    ClusterOfProcesses(string model, ITestOutputHelper? output, NetworkNamespaces? network)
    {
        Model = model;
        this.output = output;
        this.network = network;
        Http = new HttpClient(network is null ? new SocketsHttpHandler() : NetworkNamespaces.HttpHandler()) { Timeout = TimeSpan.FromSeconds(300) };
        Directory = Path.Combine(Path.GetTempPath(), "moecluster-process-tests", DateTime.UtcNow.ToString("HHmmss") + "-" + Guid.NewGuid().ToString("N")[..6]);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>Starts node 0 and <paramref name="expertNodes"/> expert nodes and waits until the gateway is ready
    /// (every attention layer and expert loaded, spread over the expert nodes).</summary>
    public static async Task<ClusterOfProcesses> StartAsync(string model, int expertNodes = 2, ITestOutputHelper? output = null,
        NetworkNamespaces? network = null)
    {
        var cluster = new ClusterOfProcesses(model, output, network);
        try
        {
            await cluster.AddNodeAsync("gateway,attention", waitUntilUp: false);
            for (int i = 0; i < expertNodes; i++) await cluster.AddExpertNodeAsync(waitUntilUp: false);
            await cluster.Gateway.WaitForAsync(cluster.Http, "readyz", StartTimeout);
            cluster.Log($"cluster of {expertNodes + 1} processes ready; logs in {cluster.Directory}");
            return cluster;
        }
        catch (Exception e)
        {
            var diagnostics = cluster.Diagnostics();
            await cluster.DisposeAsync();
            throw new InvalidOperationException($"the cluster did not start: {e.Message}\n{diagnostics}", e);
        }
    }

    NodeProcess Launch(int i)
    {
        var slot = slots[i];
        string[] flags = network is null ? TestFlags : [.. TestFlags, "--trusted-network"];
        return NodeProcess.Serve($"node {i}", Model, slot.Roles, slot.Port, slot.Http, Seed, Path.Combine(Directory, $"data-{i}"),
            Path.Combine(Directory, $"node-{i}.log"), flags, slot.Host, network?.Namespace(i));
    }

    /// <summary>Starts one more expert node on fresh ports; returns its index.</summary>
    public Task<int> AddExpertNodeAsync(bool waitUntilUp = true) => AddNodeAsync("expert", waitUntilUp);

    /// <summary>Starts one more node with <paramref name="roles"/> (on fresh ports, or in a new namespace); returns its index.</summary>
    public async Task<int> AddNodeAsync(string roles, bool waitUntilUp = true)
    {
        int i = nodes.Count;
        if (network is null) slots.Add(new Slot("127.0.0.1", FreePorts.Next(), FreePorts.Next(), roles));
        else
        {
            network.AddNode(i);
            slots.Add(new Slot(NetworkNamespaces.AddressOf(i), NamespacePort, NamespaceHttpPort, roles));
        }
        nodes.Add(Launch(i));
        if (waitUntilUp) await WaitUntilMemberAsync(nodes[i]!.Address, "up", StartTimeout);
        return i;
    }

    /// <summary>A new process for node <paramref name="i"/> on the same ports (the same cluster address).</summary>
    public void Restart(int i)
    {
        if (nodes[i] is { HasExited: false }) throw new InvalidOperationException($"node {i} is still running");
        nodes[i]?.Dispose();
        nodes[i] = Launch(i);
    }

    public void Kill(int i) => this[i].Kill();

    public async Task TerminateAsync(int i) => await this[i].TerminateAsync(TimeSpan.FromSeconds(90));

    public string AddressOf(int i) => $"akka.tcp://moecluster@{slots[i].Host}:{slots[i].Port}";

    /// <summary>GET /v1/cluster/placement on the gateway: expert id → node address.</summary>
    public async Task<Dictionary<string, string>> PlacementAsync()
    {
        var p = await Gateway.GetJsonAsync(Http, "v1/cluster/placement");
        return p["experts"]!.AsObject().ToDictionary(e => e.Key, e => e.Value!.GetValue<string>());
    }

    /// <summary>Experts per node, in the listing's order, for logs.</summary>
    public static string Describe(IReadOnlyDictionary<string, string> placement) =>
        string.Join(", ", placement.GroupBy(p => p.Value).OrderBy(g => g.Key).Select(g => $"{g.Key[(g.Key.IndexOf('@') + 1)..]}: {g.Count()}"));

    /// <summary>GET /v1/cluster/members on the gateway (or on node <paramref name="via"/>): address → status (up,
    /// joining, leaving, unreachable, …).</summary>
    public async Task<Dictionary<string, string>> MembersAsync(int via = 0)
    {
        var m = await this[via].GetJsonAsync(Http, "v1/cluster/members");
        return m.AsArray().ToDictionary(x => x!["address"]!.GetValue<string>(), x => x!["status"]!.GetValue<string>());
    }

    public async Task WaitUntilMemberAsync(string address, string? status, TimeSpan timeout) =>
        await Poll.UntilAsync(async () =>
        {
            var members = await MembersAsync();
            return status is null ? !members.ContainsKey(address) : members.TryGetValue(address, out var s) && s == status;
        }, timeout, status is null ? $"{address} removed from the cluster" : $"{address} {status}");

    public async Task WaitUntilPlacementAsync(Func<Dictionary<string, string>, bool> condition, int expertCount, TimeSpan timeout, string what) =>
        await Poll.UntilAsync(async () =>
        {
            var p = await PlacementAsync();
            return p.Count == expertCount && condition(p);
        }, timeout, what);

    /// <summary>POST /v1/generate, greedy, on the gateway (or on node <paramref name="via"/>).</summary>
    public async Task<IReadOnlyList<int>> GenerateAsync(IReadOnlyList<int> prompt, int maxTokens, CancellationToken ct = default, int via = 0)
    {
        var body = new JsonObject
        {
            ["prompt_token_ids"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
        };
        using var r = await this[via].PostJsonAsync(Http, "v1/generate", body, ct);
        var text = await r.Content.ReadAsStringAsync(ct);
        if (!r.IsSuccessStatusCode) throw new HttpRequestException($"POST /v1/generate answered {(int)r.StatusCode}: {text}");
        return JsonNode.Parse(text)!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
    }

    /// <summary>Runs <paramref name="body"/>; if it throws, rethrows with the tail of every node's log.</summary>
    public async Task WithDiagnosticsAsync(Func<Task> body)
    {
        try { await body(); }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            throw new Xunit.Sdk.XunitException($"{e.GetType().Name}: {e.Message}\n{Diagnostics()}\n{e.StackTrace}");
        }
        catch (Xunit.Sdk.XunitException e)
        {
            throw new Xunit.Sdk.XunitException($"{e.Message}\n{Diagnostics()}");
        }
    }

    public string Diagnostics() => string.Join("\n", nodes.Where(n => n is not null).Select(n => n!.Tail()));

    public void Log(string line) => output?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}");

    public async ValueTask DisposeAsync()
    {
        // Experts first, gateway last, all at once: nothing here needs a graceful shutdown.
        foreach (var n in Enumerable.Reverse(nodes)) n?.Dispose();
        Http.Dispose();
        // MOECLUSTER_TEST_KEEP_LOGS=1 keeps the node logs (docs/OPERATIONS.md): a crash of a node process leaves nothing else.
        try { if (Environment.GetEnvironmentVariable("MOECLUSTER_TEST_KEEP_LOGS") != "1") System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { /* a leftover log directory is harmless */ }
        await Task.CompletedTask;
    }
}

/// <summary>The single-process model core's greedy tokens: the reference every cluster answer must equal.</summary>
public sealed class ClusterReference : IDisposable
{
    readonly MoeTransformer model;
    readonly Dictionary<string, IReadOnlyList<int>> cache = new();

    public ClusterReference(string checkpoint) => model = MoeTransformer.Load(checkpoint, ModuleOptions.Cpu32);

    public IReadOnlyList<int> Tokens(IReadOnlyList<int> prompt, int maxTokens)
    {
        var key = string.Join(",", prompt) + "/" + maxTokens;
        lock (cache)
        {
            if (cache.TryGetValue(key, out var known)) return known;
            using var engine = new LocalEngine(model, new BatchingOptions { MaxBatchSize = 1, ContextLength = 64 });
            var tokens = engine.Run([new GenerationRequest("reference", prompt, maxTokens)])["reference"].Generated;
            cache[key] = tokens;
            return tokens;
        }
    }

    public void Dispose() => model.Dispose();
}
