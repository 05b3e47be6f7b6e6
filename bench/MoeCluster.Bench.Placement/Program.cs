using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.Shared;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Model.Training;
using MoeCluster.Node;
using MoeCluster.Placement;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Routing;
using static TorchSharp.torch;

// Even vs co-activation placement of the shipped model (models/moe-tiny-fortunes) on three expert nodes plus a gateway
// node, all on loopback in this process, with real text: the routing profile comes from the first half of the model
// card's held-out documents, the prompts from the second half. Each strategy runs twice, alternating, in fresh
// clusters; cross-node bytes and messages are the runtime's own counters.
// Usage: dotnet run -c Release --project bench/MoeCluster.Bench.Placement -- [--quick] [--write docs/BENCHMARKS.md]
var inv = CultureInfo.InvariantCulture;
bool quick = args.Contains("--quick");
string? write = args.SkipWhile(a => a != "--write").Skip(1).FirstOrDefault();
int prompts = quick ? 8 : 48, promptTokens = 32, maxTokens = quick ? 8 : 32, concurrency = 16, rounds = quick ? 1 : 2;
set_num_threads(1);   // one compute thread per process: four nodes share two cores

var modelDir = DefaultModel.Directory();
var tokenizer = ModelTokenizer.Load(modelDir)!;
var documents = TextDocuments.Read([Path.Combine(modelDir, "eval", "heldout-documents.txt")]);
int half = documents.Count / 2;
var machine = MachineInfo.Read();
Console.Error.WriteLine($"{documents.Count} held-out documents: profile on #0–{half - 1}, prompts from #{half}; load {machine.LoadAverage}");

// The routing profile, offline, on the first half.
string profilePath = Path.Combine(Path.GetTempPath(), $"moecluster-bench-profile-{Guid.NewGuid():N}.json");
RoutingSnapshot profile;
using (var model = MoeTransformer.Load(modelDir, ModuleOptions.Cpu32, 128))
{
    var sequences = documents.Take(half).Select(d => (IReadOnlyList<int>)tokenizer.Encode(d).Take(128).ToArray()).ToList();
    profile = RoutingProfiler.Profile(model, sequences, source: $"held-out documents #0–{half - 1}");
    File.WriteAllText(profilePath, profile.ToJson());
}
Console.Error.WriteLine($"profile: {profile.Tokens} tokens");

var requests = documents.Skip(half).Take(prompts)
    .Select((d, i) => new GenerationRequest($"p{i}", tokenizer.Encode(d).Take(promptTokens).ToArray(), maxTokens)).ToList();
var batching = new BatchingOptions { MaxBatchSize = concurrency, ContextLength = promptTokens + maxTokens + 8, MaxPrefillTokensPerStep = 256 };
Dictionary<string, IReadOnlyList<int>> reference;
using (var model = MoeTransformer.Load(modelDir, ModuleOptions.Cpu32, batching.ContextLength))
using (var engine = new LocalEngine(model, batching))
    reference = engine.Run(requests).ToDictionary(p => p.Key, p => p.Value.Generated);
long fedTokens = requests.Sum(r => r.PromptTokens.Count + reference[r.Id].Count - 1);

// Each setting in a fresh cluster, in this order, every round: (strategy, load slack, routing statistics).
(string, double, bool)[] Settings = [(PlacementStrategy.Even, 0.25, true), (PlacementStrategy.Coactivation, 0.25, true), (PlacementStrategy.Coactivation, 1.0, true), (PlacementStrategy.Coactivation, 2.0, true), (PlacementStrategy.Even, 0.25, false)];
var results = new List<Run>();
int port = 47400;
// A first cluster in this process pays for JIT compilation and cold caches: measure one and throw it away.
await Measure(PlacementStrategy.Even, 0.25, true, port);
port += 20;
for (int round = 0; round < rounds; round++)
    foreach (var (strategy, slack, statistics) in Settings)
    {
        results.Add(await Measure(strategy, slack, statistics, port));
        port += 20;
    }

async Task<Run> Measure(string strategy, double slack, bool statistics, int basePort)
{
    await using var cluster = await LoopbackCluster.StartAsync(basePort, [[NodeRoles.Gateway, NodeRoles.Attention], [NodeRoles.Expert], [NodeRoles.Expert], [NodeRoles.Expert]],
        _ => new RuntimeOptions
        {
            ModelDirectory = modelDir, Batching = batching, MinExpertNodes = 3, ComputeThreads = 1, RoutingStatistics = statistics,
            Placement = strategy, RoutingProfile = strategy == PlacementStrategy.Coactivation ? profilePath : null, PlacementLoadSlack = slack,
        });
    {
        var service = cluster.Service;
        using var http = new HttpClient { BaseAddress = cluster.Http(0) };
        var placement = JsonNode.Parse(await http.GetStringAsync("v1/cluster/placement"))!;
        var experts = placement["experts"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        await cluster.GenerateAsync(requests.Take(2).Select(r => r with { Id = "warm-" + r.Id, MaxTokens = 2 }).ToList());

        double bytes0 = MoeMetrics.BytesBetweenNodes.WithLabels("sent").Value;
        double messages0 = experts.Values.Distinct().Sum(n => MoeMetrics.ExpertBatches.WithLabels(n).Value);
        var clock = Stopwatch.StartNew();
        var generated = await cluster.GenerateAsync(requests);
        double seconds = clock.Elapsed.TotalSeconds;
        double bytes = MoeMetrics.BytesBetweenNodes.WithLabels("sent").Value - bytes0;
        double messages = experts.Values.Distinct().Sum(n => MoeMetrics.ExpertBatches.WithLabels(n).Value) - messages0;
        var routing = statistics ? RoutingSnapshot.Parse(await http.GetStringAsync("v1/cluster/routing")) : null;
        int same = requests.Count(r => generated[r.Id].SequenceEqual(reference[r.Id]));
        var run = new Run(strategy == PlacementStrategy.Coactivation ? string.Create(inv, $"coactivation, slack {slack}") : strategy, statistics, placement["strategy"]!.GetValue<string>(), generated.Values.Sum(g => g.Count) / seconds, bytes / fedTokens, messages / fedTokens,
            routing?.Layers.Average(l => l.NodesPerToken ?? double.NaN), CoactivationShare(experts), same, MachineInfo.CurrentLoad());
        Console.Error.WriteLine(run);
        return run;
    }
}

double CoactivationShare(IReadOnlyDictionary<string, string> experts) =>
    CoactivationPlacement.ColocatedShare(new PlacementPlan(experts.ToDictionary(p => ExpertId.Parse(p.Key), p => (IReadOnlyList<string>)[p.Value])), profile);

// What the pure algorithm expects on three equal nodes, and the old protocol's rows for comparison.
var nodes = Enumerable.Range(0, 3).Select(i => new NodeCapacity($"node-{i}", 64)).ToList();
var all = profile.Layers.SelectMany(l => Enumerable.Range(0, profile.Experts).Select(e => new ExpertId(l.Layer, e))).ToList();
double evenPlanned = CoactivationPlacement.ColocatedShare(ExpertPlacement.Place(all, nodes), profile);
var planned = new[] { 0.25, 0.5, 1.0, 2.0 }.Select(slack => (slack, CoactivationPlacement.ColocatedShare(CoactivationPlacement.Place(all, nodes, profile, slack), profile))).ToList();
int hidden = ModelConfig.Load(modelDir).HiddenSize, layers = profile.Layers.Count, k = profile.TopK;
// Before rows were sent once per node (issue #14), every (token, expert) row went out and came back: 2 × k × D × 4 bytes per MoE layer.
double oldBytes = 2.0 * k * hidden * 4 * layers;

var table = new StringBuilder();
table.AppendLine("| placement | routing statistics | round | shown by /v1/cluster/placement | co-located pairs (profile) | nodes per token (live) | cross-node bytes per token | vs even | messages per token | generated tokens/s | tokens identical to single process | load average after |");
table.AppendLine("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|");
var evenRuns = results.Where(r => r.Strategy == PlacementStrategy.Even && r.Statistics).ToList();
var coRuns = results.Where(r => r.Strategy.StartsWith(PlacementStrategy.Coactivation) && r.Strategy.EndsWith("0.25")).ToList();
var wideRuns = results.Where(r => r.Strategy.StartsWith(PlacementStrategy.Coactivation) && r.Strategy.EndsWith(" 1")).ToList();
var wholeRuns = results.Where(r => r.Strategy.StartsWith(PlacementStrategy.Coactivation) && r.Strategy.EndsWith(" 2")).ToList();
var offRuns = results.Where(r => !r.Statistics).ToList();
double evenBytes = evenRuns.Average(r => r.BytesPerToken);
foreach (var (r, i) in results.Select((r, i) => (r, i)))
    table.AppendLine(string.Create(inv, $"| {r.Strategy} | {(r.Statistics ? "on" : "off")} | {i / Settings.Length + 1} | {r.Shown} | {r.ColocatedShare:0.000} | {(r.NodesPerToken is double n ? n.ToString("0.000", inv) : "–")} | {r.BytesPerToken:0} | {r.BytesPerToken / evenBytes - 1:+0.0%;-0.0%;0.0%} | {r.MessagesPerToken:0.000} | {r.TokensPerSecond:0.0} | {r.Identical}/{requests.Count} | {r.Load} |"));
table.AppendLine();
var coBytes = coRuns.Average(r => r.BytesPerToken);
var wideBytes = wideRuns.Average(r => r.BytesPerToken);
var wideTps = wideRuns.Average(r => r.TokensPerSecond);
var wholeBytes = wholeRuns.Average(r => r.BytesPerToken);
var wholeTps = wholeRuns.Average(r => r.TokensPerSecond);
var evenTps = evenRuns.Average(r => r.TokensPerSecond);
var coTps = coRuns.Average(r => r.TokensPerSecond);
var offTps = offRuns.Average(r => r.TokensPerSecond);
table.AppendLine(string.Create(inv, $"Means: cross-node bytes per token {evenBytes:0} (even) → {coBytes:0} (co-activation, slack 0.25), **{coBytes / evenBytes - 1:+0.0%;-0.0%}**; {wideBytes:0} with slack 1, **{wideBytes / evenBytes - 1:+0.0%;-0.0%}**; {wholeBytes:0} with slack 2, **{wholeBytes / evenBytes - 1:+0.0%;-0.0%}**. Against the protocol before this issue (every token-expert row out and back, {oldBytes:0} bytes per token for {layers} MoE layers × top-{k} × hidden {hidden} float32, headers not counted): even {evenBytes / oldBytes - 1:+0%;-0%}, co-activation {coBytes / oldBytes - 1:+0%;-0%}, slack 1 **{wideBytes / oldBytes - 1:+0%;-0%}**, slack 2 {wholeBytes / oldBytes - 1:+0%;-0%}. Generated tokens/s {evenTps:0.0} (even), {coTps:0.0} ({coTps / evenTps:0.00}×), {wideTps:0.0} ({wideTps / evenTps:0.00}×), {wholeTps:0.0} ({wholeTps / evenTps:0.00}×); routing statistics off {offTps:0.0} vs on {evenTps:0.0} ({evenTps / offTps:0.00}×). The pure algorithm on three equal nodes, co-located pairs of the profile: even {evenPlanned:0.000}; co-activation {string.Join(", ", planned.Select(p => $"slack {p.slack}: {p.Item2:0.000}"))}."));
Console.WriteLine(table);
if (write is not null)
    MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "placement-bench",
        $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {machine.CpuModel}, {machine.Cores} cores shared with other work (load average at start {machine.LoadAverage}); one torch thread per node; {requests.Count} prompts of ≤ {promptTokens} tokens from held-out documents #{half}–{half + requests.Count - 1}, {maxTokens} generated each (greedy), {concurrency} at a time; {fedTokens} tokens through the model per run; profile: {profile.Tokens} tokens of documents #0–{half - 1}._\n\n{table}");
File.Delete(profilePath);
return 0;

sealed record Run(string Strategy, bool Statistics, string Shown, double TokensPerSecond, double BytesPerToken, double MessagesPerToken, double? NodesPerToken, double ColocatedShare, int Identical, string Load);
