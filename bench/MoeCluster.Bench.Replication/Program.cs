using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Node;
using MoeCluster.Placement;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Replication;
using MoeCluster.TestSupport;

// Hot-expert replication, issue #5: generated tokens/s with replication off versus on, in one run, on a checkpoint
// whose routers send half of all token-expert assignments to expert 0 of every layer. Three nodes on loopback, each
// limited to one compute thread: node 0 is this process (gateway, attention, expert; the replication coordinator runs
// here), nodes 1 and 2 are `moecluster serve --roles expert --threads 1` processes. Same prompts in both runs.
// Usage: dotnet run -c Release --project bench/MoeCluster.Bench.Replication -- [--quick] [--write docs/BENCHMARKS.md]
bool quick = args.Contains("--quick");
string? write = args.SkipWhile(a => a != "--write").Skip(1).FirstOrDefault();
int promptTokens = 16, maxTokens = quick ? 8 : 32, concurrent = 32, rounds = quick ? 1 : 3;
const int HotExpert = 0;

var config = new ModelConfig
{
    Architecture = Architecture.Mixtral, VocabSize = 4096, HiddenSize = 512, NumLayers = 4, NumHeads = 8, NumKvHeads = 2, HeadDim = 64,
    IntermediateSize = 1408, ExpertIntermediateSize = 1408, NumExperts = 8, TopK = 2, NormTopKProb = true,
    RmsNormEps = 1e-5, RopeTheta = 1e6, MaxPositionEmbeddings = 4096, EosTokenIds = [],
};
var dir = Path.Combine(Path.GetTempPath(), "moecluster-bench-skewed");
var rng = new Random(7);
var prompts = Enumerable.Range(0, concurrent).Select(_ => Enumerable.Range(0, promptTokens).Select(_ => rng.Next(config.VocabSize)).ToArray()).ToArray();
if (!File.Exists(Path.Combine(dir, "model.safetensors")))
{
    Console.Error.WriteLine($"writing the skewed benchmark model (random weights, expert {HotExpert} hot in every layer) to {dir} …");
    using var m = new MoeTransformer(config, ModuleOptions.Cpu32, 256);
    ModuleWeights.InitializeRandom(m, seed: 1);
    SkewedRouting.Apply(m, HotExpert, _ => true, strength: 1.0, gateScale: 8.0);
    Directory.CreateDirectory(dir);
    config.Save(dir);
    SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), ModuleWeights.Named(m));
}
if (!args.Contains("--node-run"))
{
    using var m = MoeTransformer.Load(dir, ModuleOptions.Cpu32, 1024);
    var shares = SkewedRouting.Shares(m, prompts.SelectMany(p => p).ToArray());
    Console.Error.WriteLine("share of assignments per layer, hot expert / next busiest: "
        + string.Join(", ", shares.Select(s => $"L{s.Key} {s.Value[HotExpert]:P0} / {s.Value.Where((_, e) => e != HotExpert).Max():P0}")));
}

var moecluster = Path.Combine(RepoRoot(), "src/MoeCluster.Node/bin/Release/net10.0/moecluster.dll");
if (!File.Exists(moecluster)) throw new FileNotFoundException($"build the node first: dotnet build -c Release src/MoeCluster.Node ({moecluster} is missing)");
var batching = new BatchingOptions { MaxBatchSize = concurrent, ContextLength = promptTokens + maxTokens + 8, MaxPrefillTokensPerStep = 512 };
var replication = new HotExpertOptions { Enabled = true, Interval = TimeSpan.FromSeconds(1), WindowSteps = 100, Thresholds = new ReplicationOptions { MinStepsBetweenChanges = 50 } };

// Each measurement runs in fresh processes (a second cluster in one process ran ~10% slower than the first,
// whichever mode it was), modes alternating, so neither mode gets the warmer machine.
if (args.SkipWhile(a => a != "--node-run").Skip(1).FirstOrDefault() is string runMode)
{
    int runPort = int.Parse(args.SkipWhile(a => a != "--port").Skip(1).First());
    var r = await MeasureAsNode(runMode == "on", runPort);
    Console.WriteLine(FormattableString.Invariant($"RESULT {r.TokensPerSecond} {r.StepMs} {r.ExpertBalancedness} {r.NodeBalancedness} {r.Replicas}"));
    return 0;
}
var results = new List<(string Setup, double TokensPerSecond, double StepMs, double ExpertBalancedness, double NodeBalancedness, string Replicas)>();
int repetitions = quick ? 1 : 2;
for (int rep = 0; rep < repetitions; rep++)
    foreach (var on in new[] { false, true })
    {
        int port = 47400 + results.Count * 10;
        var seed = $"akka.tcp://moecluster@127.0.0.1:{port}";
        var processes = Enumerable.Range(1, 2).Select(i => Start(moecluster, ["serve", "--model", dir, "--roles", "expert", "--port", $"{port + i}",
            "--http-port", $"{port + 5 + i}", "--seed-nodes", seed, "--threads", "1", "--min-expert-nodes", "3",
            "--data-dir", Path.Combine(Path.GetTempPath(), $"moecluster-bench-repl-{port}-{i}")], null)).ToList();
        string? line = null;
        var gatewayNode = Start(System.Reflection.Assembly.GetEntryAssembly()!.Location,
            [.. args.Where(a => a == "--quick"), "--node-run", on ? "on" : "off", "--port", $"{port}"], l => { if (l.StartsWith("RESULT ")) line = l; });
        processes.Add(gatewayNode);
        try
        {
            if (!gatewayNode.WaitForExit(TimeSpan.FromMinutes(10)) || line is null) throw new InvalidOperationException($"the gateway node of run {results.Count + 1} gave no result");
            var f = line.Split(' ');
            double P(int i) => double.Parse(f[i], System.Globalization.CultureInfo.InvariantCulture);
            results.Add((on ? "replication on" : "replication off", P(1), P(2), P(3), P(4), on ? string.Join(" ", f.Skip(5)) : "–"));
            Console.Error.WriteLine($"{results[^1].Setup,-16}: {P(1):0.0} tok/s, {P(2):0.0} ms/step, balancedness experts {P(3):0.00}, across nodes {P(4):0.00}");
        }
        finally
        {
            foreach (var p in processes) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } p.WaitForExit(); p.Dispose(); }
        }
    }

var summary = results.GroupBy(r => r.Setup).Select(g => (Setup: g.Key, TokensPerSecond: g.Average(r => r.TokensPerSecond), StepMs: g.Average(r => r.StepMs),
    ExpertBalancedness: g.Average(r => r.ExpertBalancedness), NodeBalancedness: g.Average(r => r.NodeBalancedness), g.Last().Replicas,
    Runs: string.Join(", ", g.Select(r => r.TokensPerSecond.ToString("0.0"))))).ToList();
var off = summary.First(r => r.Setup == "replication off").TokensPerSecond;
var table = new StringBuilder();
table.AppendLine("| setup | generated tokens/s (mean) | each run | speed-up | ms per step | balancedness over experts | balancedness over nodes | redundant replicas per layer |");
table.AppendLine("|---|---:|---|---:|---:|---:|---:|---|");
foreach (var r in summary)
    table.AppendLine($"| {r.Setup} | {r.TokensPerSecond:0.0} | {r.Runs} | {r.TokensPerSecond / off:0.00}× | {r.StepMs:0.0} | {r.ExpertBalancedness:0.00} | {r.NodeBalancedness:0.00} | {r.Replicas} |");
Console.WriteLine(table);
if (write is not null)
{
    MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "replication-bench", $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, one torch thread per node, {concurrent} concurrent requests × {rounds} rounds, each mode {repetitions}× alternating, prompt {promptTokens} tokens, {maxTokens} generated per request._\n\n{table}");
}
return 0;

// This process as node 0 (gateway, attention, expert): wait for the cluster, warm up (with replication: until the hot
// experts are replicated), then measure generated tokens/s and the balance of routed tokens.
async Task<(double TokensPerSecond, double StepMs, double ExpertBalancedness, double NodeBalancedness, string Replicas)> MeasureAsNode(bool on, int port)
{
    var seed = $"akka.tcp://moecluster@127.0.0.1:{port}";
    var runtime = new RuntimeOptions
    {
        ModelDirectory = dir, Roles = NodeRoles.All, Batching = batching, MinExpertNodes = 3, ComputeThreads = 1,
        Replication = on ? replication : new HotExpertOptions(),
    };
    var gateway = NodeHost.Build(new ServeOptions
    {
        HttpHost = "127.0.0.1", HttpPort = port + 5, DataDirectory = Path.Combine(Path.GetTempPath(), $"moecluster-bench-repl-{port}"),
        Cluster = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = port, SeedNodes = [seed] }, Runtime = runtime,
    }, _ => { });
    await gateway.StartAsync();
    var service = gateway.Services.GetRequiredService<IGenerationService>();
    var ready = Stopwatch.StartNew();
    while (!(await service.GetStatusAsync()).Ready)
    {
        if (ready.Elapsed > TimeSpan.FromMinutes(3)) throw new TimeoutException("the benchmark cluster did not become ready in 3 minutes");
        await Task.Delay(200);
    }
    await Run(service, 8);   // warm-up
    if (on)
    {   // keep the load on until the coordinator has replicated the hot expert of every layer
        var clock = Stopwatch.StartNew();
        while (config.MoeLayers.Any(l => MoeMetrics.ExpertReplicas.WithLabels(l.ToString()).Value < 2) && clock.Elapsed < TimeSpan.FromMinutes(5))
            await Run(service, 8);
        await Run(service, 8);   // replicas that were still loading are in use from here on
    }
    var nodes = Akka.Cluster.Cluster.Get(gateway.Services.GetRequiredService<Akka.Actor.ActorSystem>()).State.Members.Select(m => m.Address.ToString()).ToList();
    var before = ExpertTokens(nodes);
    long stepsBefore = MoeMetrics.StepSeconds.Count;
    double stepSecondsBefore = MoeMetrics.StepSeconds.Sum;
    var measured = Stopwatch.StartNew();
    long tokens = 0;
    for (int r = 0; r < rounds; r++) tokens += await Run(service, maxTokens);
    double seconds = measured.Elapsed.TotalSeconds;
    double stepMs = 1000 * (MoeMetrics.StepSeconds.Sum - stepSecondsBefore) / Math.Max(1, MoeMetrics.StepSeconds.Count - stepsBefore);
    var after = ExpertTokens(nodes);
    var (expertBalance, nodeBalance) = Balance(after.ToDictionary(p => p.Key, p => p.Value - before.GetValueOrDefault(p.Key)));
    var replicas = string.Join(" ", config.MoeLayers.Select(l => $"L{l}:{MoeMetrics.ExpertReplicas.WithLabels(l.ToString()).Value:0}"));
    return (tokens / seconds, stepMs, expertBalance, nodeBalance, replicas);
}

static Process Start(string dll, string[] arguments, Action<string>? onLine)
{
    var p = Process.Start(new ProcessStartInfo("dotnet", [dll, .. arguments]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
    p.ErrorDataReceived += (_, _) => { };
    p.OutputDataReceived += (_, e) => { if (e.Data is not null) onLine?.Invoke(e.Data); };
    p.BeginErrorReadLine();
    p.BeginOutputReadLine();
    return p;
}

async Task<long> Run(IGenerationService service, int tokens)
{
    var finished = await Task.WhenAll(prompts.Select(async prompt =>
    {
        await foreach (var e in service.GenerateAsync(new GenerationRequest($"b{Guid.NewGuid():N}", prompt, tokens)))
            if (e is SequenceFinished f)
                return f.Reason == FinishReason.Error ? throw new InvalidOperationException("a benchmark request failed") : f.Generated.Count;
        return 0;
    }));
    return finished.Sum();
}

// Tokens routed per (layer, expert, node) so far, as the routers counted them after splitting over replicas.
Dictionary<(int Layer, int Expert, string Node), double> ExpertTokens(IReadOnlyList<string> nodes) =>
    config.MoeLayers.SelectMany(l => Enumerable.Range(0, config.NumExperts).SelectMany(e => nodes.Select(n => (l, e, n))))
        .ToDictionary(k => k, k => MoeMetrics.ExpertTokens.WithLabels(k.l.ToString(), k.e.ToString(), k.n).Value);

// Mean over layers of (a) mean ÷ max tokens per logical expert and (b) mean ÷ max tokens per node.
(double Experts, double Nodes) Balance(Dictionary<(int Layer, int Expert, string Node), double> tokens)
{
    var load = new LoadWindow(tokens.GroupBy(t => new ExpertId(t.Key.Layer, t.Key.Expert)).ToDictionary(g => g.Key, g => (long)g.Sum(t => t.Value)), 1, 0);
    double experts = config.MoeLayers.Average(l => Balancedness.OfLayer(load, l));
    double nodes = config.MoeLayers.Average(l =>
    {
        var perNode = tokens.Where(t => t.Key.Layer == l).GroupBy(t => t.Key.Node).Select(g => g.Sum(t => t.Value)).ToList();
        return perNode.Max() <= 0 ? 1 : perNode.Average() / perNode.Max();
    });
    return (experts, nodes);
}

static string RepoRoot()
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "MoeCluster.sln"))) return d.FullName;
    throw new DirectoryNotFoundException("run the benchmark from inside the MoeCluster repository (MoeCluster.sln not found above the binary)");
}
