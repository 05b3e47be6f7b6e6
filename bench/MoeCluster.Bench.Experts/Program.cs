using System.Diagnostics;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.Shared;
using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Model.Training;
using MoeCluster.Node;
using MoeCluster.Placement;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Routing;
using static TorchSharp.torch;

// Issue #14, points 3 and 4, each setting measured beside its baseline in this one run:
//   offload — bench-small (random weights, float32, 8.6 MB per expert) on a one-node cluster keeping all 64 experts,
//             half of them resident, and half with look-ahead prefetch;
//   int8    — the shipped model with no, cold (--int8-budget of each layer) and all experts in int8: held-out
//             perplexity in one process, expert memory per node and tokens/s on a 3-node loopback cluster.
// Usage: dotnet run -c Release --project bench/MoeCluster.Bench.Experts -- [offload|int8|both] [--quick] [--write docs/BENCHMARKS.md]
var inv = CultureInfo.InvariantCulture;
string what = args.FirstOrDefault(a => !a.StartsWith("--") && a is "offload" or "int8" or "both") ?? "both";
bool quick = args.Contains("--quick");
string? write = args.SkipWhile(a => a != "--write").Skip(1).FirstOrDefault();
var machine = MachineInfo.Read();
int port = 47600;

if (what is "offload" or "both") await Offload();
if (what is "int8" or "both") await Int8();
return 0;

async Task Offload()
{
    set_num_threads(2);
    var config = MoeCluster.Bench.ModelCore.BenchSmall.Config;
    var dir = MoeCluster.Bench.ModelCore.BenchSmall.Checkpoint();
    int total = config.NumLayers * config.NumExperts, half = total / 2, newTokens = quick ? 8 : 24;
    var rng = new Random(7);
    var requests = Enumerable.Range(0, 8).Select(i => new GenerationRequest($"r{i}", Enumerable.Range(0, 16).Select(_ => rng.Next(config.VocabSize)).ToArray(), newTokens)).ToList();
    var batching = new BatchingOptions { MaxBatchSize = 8, ContextLength = 64, MaxPrefillTokensPerStep = 256 };
    var settings = new (string Name, int Resident, bool Lookahead)[] { ("all resident", 0, false), ($"{half} of {total} resident", half, false), ($"{half} of {total} resident + look-ahead", half, true) };
    var rows = new List<string>();
    var tps = settings.ToDictionary(s => s.Name, _ => new List<double>());
    for (int round = 0; round < (quick ? 1 : 2); round++)
    {
        Dictionary<string, IReadOnlyList<int>>? reference = null;
        foreach (var s in settings)
        {
            await using var cluster = await LoopbackCluster.StartAsync(port += 20, [NodeRoles.All],
                _ => new RuntimeOptions { ModelDirectory = dir, Batching = batching, ResidentExperts = s.Resident, ExpertLookahead = s.Lookahead });
            await cluster.GenerateAsync([requests[0] with { Id = "warm", MaxTokens = 2 }]);
            foreach (var sequences in new[] { 1, 8 })
            {
                var before = Counters();
                var clock = Stopwatch.StartNew();
                var generated = new Dictionary<string, IReadOnlyList<int>>();
                // One sequence: the requests one after another; eight: all at once.
                foreach (var batch in requests.Chunk(sequences)) foreach (var (id, g) in await cluster.GenerateAsync(batch)) generated[id] = g;
                double rate = requests.Count * newTokens / clock.Elapsed.TotalSeconds;
                var d = Counters().Minus(before);
                if (s.Resident == 0) reference ??= generated;
                bool same = reference is not null && requests.All(r => generated[r.Id].SequenceEqual(reference[r.Id]));
                tps[s.Name].Add(rate);
                rows.Add(string.Create(inv, $"| {s.Name} | {sequences} | {round + 1} | {rate:0.0} | {(d.Uses == 0 ? "–" : $"{(double)d.Hit / d.Uses:P0}")} | {(d.Uses == 0 ? "–" : $"{d.Hit} / {d.Late} / {d.Miss}")} | {(d.Started == 0 ? "–" : $"{d.Used} of {d.Started} ({(double)d.Used / d.Started:P0})")} | {(same ? "yes" : "**no**")} | {MachineInfo.CurrentLoad()} |"));
                Console.Error.WriteLine(rows[^1]);
            }
        }
    }
    var table = new StringBuilder();
    table.AppendLine("| setting | sequences at once | round | generated tokens/s | residency hit rate | hit / late / miss | prefetches used | tokens = all resident | load average after |");
    table.AppendLine("|---|---:|---:|---:|---:|---|---|---|---|");
    foreach (var r in rows) table.AppendLine(r);
    table.AppendLine();
    double all = tps[settings[0].Name].Average();
    table.AppendLine(string.Join("; ", settings.Skip(1).Select(s => string.Create(inv, $"{s.Name}: **{tps[s.Name].Average() / all:0.00}×** all resident"))) + " (means over rounds and both workloads).");
    Console.WriteLine(table);
    if (write is not null)
        MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "offload-bench",
            $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {machine.CpuModel}, {machine.Cores} cores shared with other work (load average at start {machine.LoadAverage}); bench-small (random weights, float32) on a one-node cluster, torch threads 2; 8 requests of 16 random prompt tokens, {newTokens} new tokens each, one at a time and 8 at once; each setting in a fresh node._\n\n{table}");
}

async Task Int8()
{
    set_num_threads(1);
    var dir = DefaultModel.Directory();
    var tokenizer = ModelTokenizer.Load(dir)!;
    var documents = TextDocuments.Read([Path.Combine(dir, "eval", "heldout-documents.txt")]);
    int halfDocs = documents.Count / 2;
    var profilePath = Path.Combine(Path.GetTempPath(), $"moecluster-int8-profile-{Guid.NewGuid():N}.json");
    RoutingSnapshot profile;
    using (var m = MoeTransformer.Load(dir, ModuleOptions.Cpu32, 128))
        profile = RoutingProfiler.Profile(m, documents.Take(halfDocs).Select(d => (IReadOnlyList<int>)tokenizer.Encode(d).Take(128).ToArray()).ToList(), source: $"held-out documents #0–{halfDocs - 1}");
    File.WriteAllText(profilePath, profile.ToJson());
    var super = SuperExperts.Detect(profile);
    const double budget = 0.6;
    var modes = new (string Mode, IReadOnlySet<ExpertId> Int8)[] { ("none", new HashSet<ExpertId>()), ("cold", ExpertPrecision.Int8Experts(profile, "cold", budget)), ("all", ExpertPrecision.Int8Experts(profile, "all", 1)) };

    // Held-out perplexity of the model card's eval set (all windows), in one process, with those experts int8.
    var eval = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")))!["held_out_split"]!;
    var heldOut = new PackedSequences(TrainingTokenizer.Encode(tokenizer, TextDocuments.Read([Path.Combine(dir, eval["documents_file"]!.GetValue<string>())])),
        TrainingTokenizer.EndOfTextId(tokenizer, dir), eval["sequence_length"]!.GetValue<int>());
    int windows = quick ? 32 : heldOut.Count;
    var perplexity = new Dictionary<string, double>();
    foreach (var (mode, int8) in modes)
    {
        using var m = MoeTransformer.Load(dir, ModuleOptions.Cpu32);
        foreach (var e in int8) Int8Expert.FakeQuantise(m.Layers[e.Layer].Moe!.experts[e.Expert]);
        perplexity[mode] = Perplexity.Evaluate(m, heldOut, windows).Perplexity;
        Console.Error.WriteLine($"{mode}: {int8.Count} experts int8, perplexity {perplexity[mode]:0.000}");
    }

    // Serving: expert memory per node and tokens/s on a 3-node loopback cluster, prompts from the other half.
    var requests = documents.Skip(halfDocs).Take(quick ? 8 : 24).Select((d, i) => new GenerationRequest($"p{i}", tokenizer.Encode(d).Take(32).ToArray(), quick ? 8 : 32)).ToList();
    var batching = new BatchingOptions { MaxBatchSize = 8, ContextLength = 80, MaxPrefillTokensPerStep = 256 };
    var rows = new List<string>();
    var memory = new Dictionary<string, long>();
    foreach (var (mode, int8) in modes)
    {
        // The check runs each request alone, in process and in the cluster: batches then have the same rows in both
        // (concurrent requests reach the gateway over time, so its batches differ from an in-process engine's, and a
        // float32 product over another number of rows can break a near tie).
        var check = requests.Take(8).ToList();
        var expected = new Dictionary<string, IReadOnlyList<int>>();
        using (var m = MoeTransformer.Load(dir, ModuleOptions.Cpu32, batching.ContextLength))
        {
            foreach (var e in int8) Int8Expert.FakeQuantise(m.Layers[e.Layer].Moe!.experts[e.Expert]);
            foreach (var r in check)
            {
                using var engine = new LocalEngine(m, batching);
                expected[r.Id] = engine.Run([r])[r.Id].Generated;
            }
        }
        await using var cluster = await LoopbackCluster.StartAsync(port += 20, [[NodeRoles.Gateway, NodeRoles.Attention], [NodeRoles.Expert], [NodeRoles.Expert]],
            _ => new RuntimeOptions { ModelDirectory = dir, Batching = batching, MinExpertNodes = 2, ComputeThreads = 1, Int8Experts = mode, Int8Budget = budget, RoutingProfile = mode == "none" ? null : profilePath });
        var region = cluster.Get<ActorRegistry>(0).Get<ExpertRegionKey>();
        var config = ModelConfig.Load(dir);
        var started = await Task.WhenAll(config.MoeLayers.SelectMany(l => Enumerable.Range(0, config.NumExperts).Select(e =>
            region.Ask<ExpertStarted>(new StartExpert(new ExpertKey(l, e).EntityId), TimeSpan.FromSeconds(30)))));
        var perNode = started.GroupBy(s => s.Node).OrderBy(g => g.Key).Select(g => g.Sum(s => s.ParameterBytes)).ToList();
        memory[mode] = perNode.Sum();
        await cluster.GenerateAsync([requests[0] with { Id = "warm", MaxTokens = 2 }]);
        var clock = Stopwatch.StartNew();
        var generated = await cluster.GenerateAsync(requests);
        double rate = generated.Values.Sum(g => g.Count) / clock.Elapsed.TotalSeconds;
        int same = 0;
        foreach (var r in check)
            if ((await cluster.GenerateAsync([r with { Id = r.Id + "-alone" }]))[r.Id + "-alone"].SequenceEqual(expected[r.Id])) same++;
        rows.Add(string.Create(inv, $"| {mode} | {int8.Count} of {config.MoeLayers.Count() * config.NumExperts} | {string.Join(" / ", perNode.Select(b => $"{b / 1024.0:0}"))} | {memory[mode] / 1024.0:0} | {memory[mode] / (double)memory["none"] - 1:+0%;-0%;0%} | {perplexity[mode]:0.000} | {perplexity[mode] / perplexity["none"] - 1:+0.00%;-0.00%;0.00%} | {rate:0.0} | {same}/{check.Count} | {MachineInfo.CurrentLoad()} |"));
        Console.Error.WriteLine(rows[^1]);
    }
    var table = new StringBuilder();
    table.AppendLine("| int8 experts | experts in int8 | expert memory per expert node (KiB) | all expert nodes (KiB) | vs none | held-out perplexity | vs none | generated tokens/s (3-node loopback) | tokens = in-process model with the same experts int8 (each request alone) | load average after |");
    table.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---|---|");
    foreach (var r in rows) table.AppendLine(r);
    table.AppendLine();
    table.AppendLine($"Super experts detected in the profile: {(super.Count == 0 ? "none" : string.Join(", ", super.Order()))} (largest output activation per expert from {profile.Tokens} profiled tokens: {profile.Layers.SelectMany(l => l.MaxOutput!).Min():0.00} to {profile.Layers.SelectMany(l => l.MaxOutput!).Max():0.00}).");
    Console.WriteLine(table);
    if (write is not null)
        MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "int8-bench",
            $"_Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {machine.CpuModel}, {machine.Cores} cores shared with other work (load average at start {machine.LoadAverage}); the shipped model in float32, `--int8-budget {budget}` for cold; perplexity over {(windows == heldOut.Count ? "all" : $"the first {windows} of the")} {heldOut.Count} held-out windows of 128 tokens ({windows * 128} tokens); {requests.Count} prompts of ≤ 32 tokens from held-out documents #{halfDocs}–, 32 new tokens, 8 at once; one torch thread per node; profile from documents #0–{halfDocs - 1}._\n\n{table}");
    File.Delete(profilePath);
}

static (long Hit, long Late, long Miss, long Started, long Used) Read()
{
    long R(string l) => (long)MoeMetrics.ExpertResidency.WithLabels(l).Value;
    long P(string l) => (long)MoeMetrics.ExpertPrefetches.WithLabels(l).Value;
    return (R("hit"), R("late"), R("miss"), P("started"), P("used"));
}

static Snapshot Counters() { var r = Read(); return new Snapshot(r.Hit, r.Late, r.Miss, r.Started, r.Used); }

sealed record Snapshot(long Hit, long Late, long Miss, long Started, long Used)
{
    public long Uses => Hit + Late + Miss;
    public Snapshot Minus(Snapshot b) => new(Hit - b.Hit, Late - b.Late, Miss - b.Miss, Started - b.Started, Used - b.Used);
}
