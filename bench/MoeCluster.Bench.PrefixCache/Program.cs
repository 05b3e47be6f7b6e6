using System.Diagnostics;
using System.Globalization;
using System.Text;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.ModelCore;
using MoeCluster.Bench.Report;
using MoeCluster.Bench.Shared;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;

// Time to first token (TTFT) of a chat whose 1,000-token system prompt the server has not seen (cold) and has seen
// (warm: the same system prompt, another user turn), for the single-process engine with the prefix cache off and on,
// and a 3-node loopback cluster (gateway + attention, two expert nodes) with it on; all in this one run. Each warm
// request's greedy tokens are compared with the cache-off engine's for the same request.
// Usage: dotnet run -c Release --project bench/MoeCluster.Bench.PrefixCache -- [--quick] [--no-write] [--doc PATH]
bool quick = args.Contains("--quick");
bool write = !args.Contains("--no-write") && !quick;
string? docPath = args.SkipWhile(a => a != "--doc").Skip(1).FirstOrDefault();
const int SystemTokens = 1000, UserTokens = 24, MaxTokens = 4;
int trials = quick ? 2 : 7;
var inv = CultureInfo.InvariantCulture;
var started = DateTime.UtcNow;
var machine = MachineInfo.Read();
Console.Error.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; {trials} trials per setup");

var config = BenchSmall.Config;
var dir = BenchSmall.Checkpoint();
// The serving defaults (`moecluster serve`): 512-token prefill chunks, 16-token prefix-cache blocks.
var batching = new BatchingOptions { MaxBatchSize = 8, ContextLength = 1088 };

int[] Tokens(int seed, int n)
{
    var rng = new Random(seed);
    return Enumerable.Range(0, n).Select(_ => rng.Next(config.VocabSize)).ToArray();
}
GenerationRequest Chat(int trial, int turn) =>
    new($"t{trial}-{turn}-{Guid.NewGuid():N}", [.. Tokens(1000 + trial, SystemTokens), .. Tokens(5000 + 10 * trial + turn, UserTokens)], MaxTokens);

async Task<(double TtftMs, SequenceFinished Finished)> Ttft(IGenerationService service, GenerationRequest r)
{
    var clock = Stopwatch.StartNew();
    double ttft = -1;
    await foreach (var e in service.GenerateAsync(r))
    {
        if (e is TokenGenerated && ttft < 0) ttft = clock.Elapsed.TotalMilliseconds;
        if (e is SequenceFinished f) return f.Reason is FinishReason.Length or FinishReason.Stop ? (ttft, f) : throw new InvalidOperationException($"{r.Id}: {f.Reason} {f.Error}");
    }
    throw new InvalidOperationException($"{r.Id} did not finish");
}

// What the cache-off engine generates for each warm request (the correctness reference).
var reference = new Dictionary<int, IReadOnlyList<int>>();
var rows = new List<string>();

async Task Measure(string setup, IGenerationService service)
{
    await Ttft(service, Chat(-1, 0));   // warm-up: JIT and first allocations, a system prompt no trial uses
    var cold = new List<double>();
    var warm = new List<double>();
    var cached = new List<int>();
    int same = 0;
    for (int t = 0; t < trials; t++)
    {
        var (c, _) = await Ttft(service, Chat(t, 0));
        var (w, f) = await Ttft(service, Chat(t, 1));
        cold.Add(c);
        warm.Add(w);
        cached.Add(f.CachedPromptTokens);
        if (reference.TryGetValue(t, out var expected)) { if (expected.SequenceEqual(f.Generated)) same++; }
        else { reference[t] = f.Generated; same++; }
        Console.Error.WriteLine($"{setup}: trial {t}: cold {c:0} ms, warm {w:0} ms ({f.CachedPromptTokens} cached tokens)");
    }
    double Median(List<double> x) => x.Order().ElementAt(x.Count / 2);
    rows.Add(string.Create(inv, $"| {setup} | {cold.Min():0} / {Median(cold):0} | {warm.Min():0} / {Median(warm):0} | {Median(warm) / Median(cold):0.00} | {cached.Min()}–{cached.Max()} | {same}/{trials} | {MachineInfo.CurrentLoad()} |"));
    Console.Error.WriteLine(rows[^1]);
}

using (var model = MoeTransformer.Load(dir, ModuleOptions.Cpu32, batching.ContextLength))
{
    using (var off = new LocalGenerationService(model, batching with { PrefixCaching = false }))
        await Measure("single process, prefix cache off", off);
    using (var on = new LocalGenerationService(model, batching))
        await Measure("single process, prefix cache on", on);
}
await using (var cluster = await LoopbackCluster.StartAsync(27600, [[NodeRoles.Gateway, NodeRoles.Attention], [NodeRoles.Expert], [NodeRoles.Expert]],
    _ => new RuntimeOptions { ModelDirectory = dir, Batching = batching, MinExpertNodes = 2 }))
    await Measure("3-node loopback cluster, prefix cache on", cluster.Service);

var md = new StringBuilder();
md.AppendLine(string.Create(inv, $"Measured {started:yyyy-MM-dd HH:mm} UTC on {machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage} at start (shared machine)."));
md.AppendLine($"Model: {BenchSmall.Name} ({BenchSmall.Describe(config)}), float32. Each trial: a chat of a {SystemTokens}-token system prompt the server has not seen " +
    $"and a {UserTokens}-token user turn (cold), then the same system prompt with another user turn (warm); {MaxTokens} tokens generated, greedy; {trials} trials per setup, " +
    "one request at a time. TTFT = from submitting to the first generated token, at the generation service (no HTTP).");
md.AppendLine();
md.AppendLine("| setup | cold TTFT min / median (ms) | warm TTFT min / median (ms) | warm / cold (medians) | cached tokens (warm) | warm tokens = cache-off engine | load average after |");
md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var r in rows) md.AppendLine(r);
Console.WriteLine(md);
if (write)
{
    var path = docPath ?? Path.Combine(BenchmarksDoc.FindRepositoryRoot(), "docs", "BENCHMARKS.md");
    BenchmarksDoc.ReplaceSection(path, "prefix-cache", md.ToString());
    Console.Error.WriteLine($"wrote the prefix-cache section of {path}");
}
