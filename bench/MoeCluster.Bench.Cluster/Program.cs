using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Node;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Metrics;
using static TorchSharp.torch;

// Generated tokens/s of bench-small at 1, 8 and 32 concurrent sequences for (a) the single-process model core,
// (b) a one-node cluster and (c) a three-node loopback cluster, all in this one run, as ratios to (a).
// Usage: dotnet run -c Release --project bench/MoeCluster.Bench.Cluster -- [--quick] [--write docs/BENCHMARKS.md]
//        dotnet run -c Release --project bench/MoeCluster.Bench.Cluster -- served [--rounds N] [--quick] [--write docs/BENCHMARKS.md]
if (args.FirstOrDefault() == "served") return await MoeCluster.Bench.Cluster.ServedBenchmark.Run(args[1..]);
bool quick = args.Contains("--quick");
string? write = args.SkipWhile(a => a != "--write").Skip(1).FirstOrDefault();
int promptTokens = 16, maxTokens = quick ? 8 : 32;
int[] concurrency = quick ? [1, 8] : [1, 8, 32];

var config = MoeCluster.Bench.ModelCore.BenchSmall.Config;
var dir = MoeCluster.Bench.ModelCore.BenchSmall.Checkpoint();
var batching = new BatchingOptions { MaxBatchSize = 32, ContextLength = promptTokens + maxTokens + 8, MaxPrefillTokensPerStep = 512 };

var results = new List<(string Setup, int Concurrency, double TokensPerSecond, double BytesPerToken, double StepMs)>();
async Task Measure(string setup, IGenerationService service)
{
    await Run(service, 4, 2);   // warm-up
    foreach (var c in concurrency)
    {
        double bytesBefore = MoeMetrics.BytesBetweenNodes.WithLabels("sent").Value;
        long stepsBefore = MoeMetrics.StepSeconds.Count;
        double stepSecondsBefore = MoeMetrics.StepSeconds.Sum;
        var clock = Stopwatch.StartNew();
        long tokens = await Run(service, c, maxTokens);
        double seconds = clock.Elapsed.TotalSeconds;
        double bytes = MoeMetrics.BytesBetweenNodes.WithLabels("sent").Value - bytesBefore;
        long steps = MoeMetrics.StepSeconds.Count - stepsBefore;
        double stepMs = steps > 0 ? 1000 * (MoeMetrics.StepSeconds.Sum - stepSecondsBefore) / steps : 1000 * seconds / maxTokens;
        results.Add((setup, c, tokens / seconds, bytes / tokens, stepMs));
        Console.Error.WriteLine($"{setup,-28} {c,3} seqs: {tokens / seconds,8:0.0} tok/s, {bytes / tokens,10:0} B/token between nodes, {stepMs:0.0} ms/step");
    }
}

async Task<long> Run(IGenerationService service, int sequences, int tokens)
{
    var rng = new Random(7);
    var finished = await Task.WhenAll(Enumerable.Range(0, sequences).Select(async i =>
    {
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(config.VocabSize)).ToArray();
        await foreach (var e in service.GenerateAsync(new GenerationRequest($"b{Guid.NewGuid():N}", prompt, tokens)))
            if (e is SequenceFinished f) return f.Generated.Count;
        return 0;
    }));
    return finished.Sum();
}

// (a) the model core alone
using (var model = MoeTransformer.Load(dir, ModuleOptions.Cpu32, batching.ContextLength))
using (var local = new LocalGenerationService(model, batching))
    await Measure("(a) single process", local);

// (b) and (c): the production node host, in this process, one ActorSystem per node on loopback ports
foreach (var (name, roles) in new[]
{
    ("(b) 1-node cluster", new[] { NodeRoles.All }),
    ("(c) 3-node loopback cluster", new[] { new[] { NodeRoles.Gateway, NodeRoles.Attention }, [NodeRoles.Expert], [NodeRoles.Expert] }),
})
{
    int port = 47100 + results.Count * 10;
    var seed = $"akka.tcp://moecluster@127.0.0.1:{port}";
    var apps = new List<WebApplication>();
    for (int i = 0; i < roles.Length; i++)
    {
        var app = NodeHost.Build(new ServeOptions
        {
            HttpHost = "127.0.0.1", HttpPort = port + 5 + i, DataDirectory = Path.Combine(Path.GetTempPath(), $"moecluster-bench-{port}-{i}"),
            Cluster = new ClusterNodeOptions { Hostname = "127.0.0.1", Port = port + i, SeedNodes = [seed] },
            Runtime = new RuntimeOptions { ModelDirectory = dir, Roles = roles[i], Batching = batching, MinExpertNodes = roles.Length == 1 ? 1 : 2 },
        }, _ => { });
        await app.StartAsync();
        apps.Add(app);
    }
    var service = apps[0].Services.GetRequiredService<IGenerationService>();
    while (!(await service.GetStatusAsync()).Ready) await Task.Delay(100);
    await Measure(name, service);
    foreach (var app in Enumerable.Reverse(apps)) { await app.StopAsync(); await app.DisposeAsync(); }
}

// The cost model (moecluster plan) against what was just measured: same model, same requests, rates measured now.
var calibration = MoeCluster.Node.Commands.MachineCalibration.Measure(config.HiddenSize, config.ExpertIntermediateSize,
    MoeCluster.Node.Commands.PlanCommand.ShapeOf(config, "float32").AllExpertBytes, ScalarType.Float32);
var shape = MoeCluster.Node.Commands.PlanCommand.ShapeOf(config, "float32");
var blocks = MoeCluster.Node.Commands.BlockCalibration.Measure(config, ScalarType.Float32, concurrency, [promptTokens], promptTokens + maxTokens / 2);
var validation = new StringBuilder();
validation.AppendLine($"Rates measured in this run: weights stream at {calibration.Machine.WeightStreamBytesPerSecond / 1e9:0.0} GB/s (matrix–vector over bench-small's experts), {calibration.Machine.MatmulFlopsPerSecond / 1e9:0.0} GFLOP/s (32 rows), {calibration.Machine.OpSeconds * 1e6:0.0} µs per small op, {calibration.LocalHopSeconds * 1e6:0} µs per local actor hop, {calibration.MessageSeconds * 1e3:0.00} ms per loopback round trip, {calibration.LoopbackBytesPerSecond / 1e9:0.00} GB/s over loopback.");
validation.AppendLine();
validation.AppendLine("| setup | sequences | predicted tokens/s | measured tokens/s | error |");
validation.AppendLine("|---|---:|---:|---:|---:|");
var errors = new List<double>();
foreach (var r in results.Where(r => !r.Setup.StartsWith("(a)")))
{
    int nodes = r.Setup.StartsWith("(b)") ? 1 : 3;
    var cluster = new MoeCluster.Placement.ClusterShape(nodes, 16L << 30, calibration.LoopbackBytesPerSecond, calibration.MessageSeconds, calibration.LocalHopSeconds, SharedMachine: true);
    double predicted = r.Concurrency * maxTokens / MoeCluster.Placement.CostModel.RunSeconds(shape, cluster, blocks, r.Concurrency, promptTokens, maxTokens);
    errors.Add(predicted / r.TokensPerSecond - 1);
    validation.AppendLine($"| {r.Setup} | {r.Concurrency} | {predicted:0.0} | {r.TokensPerSecond:0.0} | {predicted / r.TokensPerSecond - 1:+0%;-0%} |");
}
validation.AppendLine();
validation.AppendLine($"Mean absolute error {errors.Average(Math.Abs):0%}, largest {errors.Max(Math.Abs):0%}.");
Console.WriteLine(validation);

var table = new StringBuilder();
table.AppendLine("| setup | sequences | generated tokens/s | ratio to (a) | ms per step | activation bytes between nodes per generated token |");
table.AppendLine("|---|---:|---:|---:|---:|---:|");
foreach (var r in results)
{
    var baseline = results.First(b => b.Setup.StartsWith("(a)") && b.Concurrency == r.Concurrency).TokensPerSecond;
    table.AppendLine($"| {r.Setup} | {r.Concurrency} | {r.TokensPerSecond:0.0} | {r.TokensPerSecond / baseline:0.00} | {r.StepMs:0.0} | {(r.Setup.StartsWith("(c)") ? r.BytesPerToken.ToString("0") : "–")} |");
}
Console.WriteLine(table);
if (write is not null)
{
    MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "plan-validation", $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC in the cluster benchmark run below (same model, requests and load)._\n\n{validation}");
    MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "cluster-bench", $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, torch threads {get_num_threads()}, prompt {promptTokens} tokens, {maxTokens} generated per sequence._\n\n{table}");
}
return 0;
