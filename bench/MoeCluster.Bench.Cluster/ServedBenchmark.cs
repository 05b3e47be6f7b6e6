using System.Diagnostics;
using System.Globalization;
using System.Text;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.ModelCore;
using MoeCluster.Bench.Shared;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Metrics;
using static TorchSharp.torch;

namespace MoeCluster.Bench.Cluster;

/// <summary>
/// Issue 12's served-path goals in one run: decode tokens/s of bench-small (float32) for 1 and 32 sequences through
/// the model core (<see cref="LockStepDecode"/>), <c>LocalEngine</c> (behind <see cref="LocalGenerationService"/>), a
/// one-node cluster and the three-node loopback cluster with float32 and with bfloat16 activations on the wire, plus the
/// activation bytes and messages those send per generated token (the serializers' own counters). All five setups are
/// alive for the whole run and every round runs each workload on each of them back to back (rotating who goes first),
/// so they see the same machine load; figures are the best round and the median.
/// </summary>
public static class ServedBenchmark
{
    const int PromptTokens = 16, Generate = 32;
    static int[] Workloads = [1, 32];

    /// <summary>One run of one workload on one setup. Decode tokens/s counts the tokens generated after every
    /// sequence of the run had its first one, over the time from then to the last token (the model core: the decode
    /// steps after the prompt step); bytes and messages are what all nodes' serializers sent during the run.</summary>
    sealed record Figure(double DecodeTokensPerSecond, double TokensPerSecondWithPrompt, long Generated, double Bytes, double Messages, int[][]? Tokens)
    {
        /// <summary>Process CPU seconds over the run (every thread: actors, OpenMP workers, spinning included).</summary>
        public double CpuSeconds { get; set; }
        /// <summary>Gateway step wall time and expert compute time summed over experts (cluster setups; 0 otherwise).</summary>
        public double StepSeconds { get; set; }
        public long Steps { get; set; }
        public double ExpertSeconds { get; set; }
    }

    sealed record Setup(string Name, Func<IReadOnlyList<int[]>, int, Task<Figure>> Run, IAsyncDisposable? Owner = null);

    public static async Task<int> Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        string? write = args.SkipWhile(a => a != "--write").Skip(1).FirstOrDefault();
        int rounds = quick ? 1 : int.Parse(args.SkipWhile(a => a != "--rounds").Skip(1).FirstOrDefault() ?? "3", CultureInfo.InvariantCulture);
        int generate = quick ? 8 : Generate;
        // For profiling runs (never for the recorded table): one workload, some setups, statistics off, other threads.
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        if (Option("--sequences") is { } only) Workloads = [int.Parse(only, CultureInfo.InvariantCulture)];
        var include = Option("--setups")?.Split(',');
        bool statistics = Option("--routing-statistics") != "false";
        threadProfile = args.Contains("--thread-profile");
        set_num_threads(Option("--threads") is { } threads ? int.Parse(threads, CultureInfo.InvariantCulture) : Environment.ProcessorCount);
        var machine = MachineInfo.Read();
        var started = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        Console.Error.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; torch threads {get_num_threads()}; {rounds} round(s)");

        var config = BenchSmall.Config;
        var dir = BenchSmall.Checkpoint();
        var batching = new BatchingOptions { MaxBatchSize = 32, ContextLength = PromptTokens + generate + 8, MaxPrefillTokensPerStep = 512 };
        var setups = new List<Setup>();
        using var model = MoeTransformer.Load(dir, ModuleOptions.Cpu32, batching.ContextLength);
        using var local = new LocalGenerationService(model, batching);
        try
        {
            // The model core on one thread of its own for the whole run, as LocalEngine's loop has: an await would resume it
            // on any thread-pool thread, each with its own OpenMP team.
            using var coreThread = new DedicatedThread("model-core");
            setups.Add(new("model core", (prompts, n) => coreThread.Run(() => Core(model, prompts, n))));
            setups.Add(new("LocalEngine", (prompts, n) => Serve(local, prompts, n)));
            RuntimeOptions Runtime(int minExpertNodes) => new() { ModelDirectory = dir, Batching = batching, MinExpertNodes = minExpertNodes, RoutingStatistics = statistics };
            bool Wanted(string name) => include is null || include.Any(i => name.StartsWith(i, StringComparison.OrdinalIgnoreCase));
            if (Wanted("1-node cluster"))
            {
                var one = await LoopbackCluster.StartAsync(47300, [NodeRoles.All], _ => Runtime(1));
                setups.Add(new("1-node cluster", (prompts, n) => Serve(one.Service, prompts, n), one));
            }
            // Profiling only (named in --setups): the same one-node cluster without routing statistics, beside it.
            if (include?.Any(i => i.Contains("statistics off")) == true)
            {
                var off = await LoopbackCluster.StartAsync(47360, [NodeRoles.All], _ => Runtime(1) with { RoutingStatistics = false });
                setups.Add(new("1-node cluster, statistics off", (prompts, n) => Serve(off.Service, prompts, n), off));
            }
            // Profiling only (named in --setups): the one-node cluster with its token path on a dispatcher of one or two
            // dedicated threads (--token-threads), beside the default (the .NET thread pool).
            foreach (var (variant, tokenThreads, port) in new[] { ("1 token thread", 1, 47380), ("2 token threads", 2, 47400) })
            {
                if (include?.Any(i => i.Trim().Equals(variant, StringComparison.OrdinalIgnoreCase)) != true) continue;
                var c = await LoopbackCluster.StartAsync(port, [NodeRoles.All], _ => Runtime(1) with { TokenPathThreads = tokenThreads });
                setups.Add(new($"1-node cluster, {variant}", (prompts, n) => Serve(c.Service, prompts, n), c));
            }
            string[][] three = [[NodeRoles.Gateway, NodeRoles.Attention], [NodeRoles.Expert], [NodeRoles.Expert]];
            foreach (var (wire, port) in new[] { ("float32", 47320), ("bfloat16", 47340) })
            {
                if (!Wanted($"3-node cluster, wire {wire}")) continue;
                var c = await LoopbackCluster.StartAsync(port, three, _ => Runtime(2), wire == "float32" ? null : wire);
                setups.Add(new($"3-node cluster, wire {wire}", (prompts, n) => Serve(c.Service, prompts, n), c));
            }

            // Sequences whose greedy tokens equal LocalEngine's for the same prompts, per cluster setup and workload.
            var identical = new Dictionary<(string, int), int>();
            setups.RemoveAll(s => !Wanted(s.Name));
            var figures = setups.ToDictionary(s => s.Name, _ => Workloads.ToDictionary(w => w, _ => new List<Figure>()));
            // A whole round thrown away first: with tiered compilation on (as in production) the first runs of each
            // path would time tier-0 code and the JIT's own thread (seen in --thread-profile runs).
            Console.Error.WriteLine("warm-up round (tiered JIT, first allocations; not counted)");
            foreach (var s in setups)
                foreach (var w in Workloads) await s.Run(Prompts(config, w, seed: -w), generate);
            for (int round = 0; round < rounds; round++)
            {
                Console.Error.WriteLine($"round {round + 1}/{rounds} (load {MachineInfo.CurrentLoad()})");
                foreach (var w in Workloads)
                {
                    // Fresh prompts every round (the prefix cache would otherwise skip their prefill), the same for every setup.
                    var prompts = Prompts(config, w, seed: 1000 * round + w);
                    for (int k = 0; k < setups.Count; k++)
                    {
                        var s = setups[(k + round) % setups.Count];
                        var f = await Measured(() => s.Run(prompts, generate));
                        figures[s.Name][w].Add(f);
                        Console.Error.WriteLine($"  {s.Name,-28} {w,2} seq: decode {f.DecodeTokensPerSecond,7:0.0} tok/s, with prompt {f.TokensPerSecondWithPrompt,7:0.0}, {f.Bytes / f.Generated,8:0} B and {f.Messages / f.Generated:0.00} messages per generated token, {1000 * f.CpuSeconds / f.Generated:0.0} CPU ms per token" +
                            (f.Steps > 0 ? $", {1000 * f.StepSeconds / f.Steps:0.0} ms per gateway step, expert compute {1000 * f.ExpertSeconds / f.Steps:0.0} ms per step" : ""));
                    }
                    if (!figures.TryGetValue("LocalEngine", out var engine)) continue;
                    var reference = engine[w].Last().Tokens!;
                    foreach (var s in setups.Where(s => s.Name.Contains("cluster")))
                    {
                        var t = figures[s.Name][w].Last().Tokens!;
                        int same = t.Zip(reference).Count(p => p.Item1.SequenceEqual(p.Item2));
                        identical[(s.Name, w)] = identical.GetValueOrDefault((s.Name, w)) + same;
                    }
                }
            }
            if (include is not null) return 0;
            var markdown = Markdown(figures, identical, machine, started, clock.Elapsed.TotalSeconds, rounds, generate);
            Console.WriteLine(markdown);
            if (write is not null && !quick) MoeCluster.Bench.Report.BenchmarksDoc.ReplaceSection(write, "served", markdown);
            return 0;
        }
        finally
        {
            foreach (var s in setups) if (s.Owner is not null) await s.Owner.DisposeAsync();
        }
    }

    static IReadOnlyList<int[]> Prompts(ModelConfig config, int sequences, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, sequences).Select(_ => Enumerable.Range(0, PromptTokens).Select(_ => rng.Next(config.VocabSize)).ToArray()).ToList();
    }

    static Figure Core(MoeTransformer model, IReadOnlyList<int[]> prompts, int generate)
    {
        var t = LockStepDecode.Run(model, prompts, generate);
        return new Figure(t.DecodeTokensPerSecond, t.TokensPerSecondWithPrompt, (long)prompts.Count * generate, 0, 0, null);
    }

    /// <summary>All prompts at once through <paramref name="service"/>, each token's arrival time-stamped where the
    /// caller receives it.</summary>
    static async Task<Figure> Serve(IGenerationService service, IReadOnlyList<int[]> prompts, int generate)
    {
        double bytes = Sent(MoeMetrics.BytesBetweenNodes), messages = Sent(MoeMetrics.RemoteMessages);
        long start = Stopwatch.GetTimestamp();
        var runs = await Task.WhenAll(prompts.Select(async p =>
        {
            var arrivals = new List<long>();
            await foreach (var e in service.GenerateAsync(new GenerationRequest($"served-{Guid.NewGuid():N}", p, generate)))
            {
                if (e is TokenGenerated) arrivals.Add(Stopwatch.GetTimestamp());
                else if (e is SequenceFinished f)
                    return f.Reason is FinishReason.Length or FinishReason.Stop ? (arrivals, f.Generated.ToArray()) : throw new InvalidOperationException($"{f.Reason}: {f.Error}");
            }
            throw new InvalidOperationException("the stream ended without SequenceFinished");
        }));
        long end = Stopwatch.GetTimestamp();
        long everyoneStarted = runs.Max(r => r.arrivals[0]), last = runs.Max(r => r.arrivals[^1]);
        long after = runs.Sum(r => r.arrivals.Count(t => t > everyoneStarted));
        long generated = runs.Sum(r => r.arrivals.Count);
        return new Figure(after / Stopwatch.GetElapsedTime(everyoneStarted, last).TotalSeconds, generated / Stopwatch.GetElapsedTime(start, end).TotalSeconds,
            generated, Sent(MoeMetrics.BytesBetweenNodes) - bytes, Sent(MoeMetrics.RemoteMessages) - messages, runs.Select(r => r.Item2).ToArray());
    }

    /// <summary>CPU time (ticks) of every thread of this process, from /proc (Linux; empty elsewhere).</summary>
    static Dictionary<string, (string Name, long Ticks)> ThreadTicks()
    {
        var result = new Dictionary<string, (string, long)>();
        if (!Directory.Exists("/proc/self/task")) return result;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                int close = stat.LastIndexOf(')');
                var fields = stat[(close + 2)..].Split(' ');
                result[Path.GetFileName(task)] = (stat[(stat.IndexOf('(') + 1)..close], long.Parse(fields[11]) + long.Parse(fields[12]));
            }
            catch (IOException) { }   // the thread ended meanwhile
        }
        return result;
    }

    /// <summary>Set by --thread-profile: print which threads used the CPU during each run.</summary>
    static bool threadProfile;

    /// <summary>Adds the process CPU time and the runtime's step and expert-compute histograms over the run.</summary>
    static async Task<Figure> Measured(Func<Task<Figure>> run)
    {
        var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        double step = MoeMetrics.StepSeconds.Sum, expert = MoeMetrics.ExpertComputeSeconds.Sum;
        long steps = MoeMetrics.StepSeconds.Count;
        var threadsBefore = threadProfile ? ThreadTicks() : [];
        var f = await run();
        if (threadProfile)
        {
            var used = ThreadTicks().Select(t => (t.Value.Name, Ticks: t.Value.Ticks - (threadsBefore.TryGetValue(t.Key, out var b) ? b.Ticks : 0))).Where(t => t.Ticks > 0).ToList();
            Console.Error.WriteLine($"    {used.Count} threads used CPU: " + string.Join(", ", used.GroupBy(t => t.Name).Select(g => $"{g.Key} ×{g.Count()} {g.Sum(t => t.Ticks) * 10} ms").OrderByDescending(x => x)));
        }
        process.Refresh();
        f.CpuSeconds = (process.TotalProcessorTime - cpu).TotalSeconds;
        f.StepSeconds = MoeMetrics.StepSeconds.Sum - step;
        f.Steps = MoeMetrics.StepSeconds.Count - steps;
        f.ExpertSeconds = MoeMetrics.ExpertComputeSeconds.Sum - expert;
        return f;
    }

    static double Sent(Prometheus.Counter c) => c.WithLabels("sent").Value;

    static double Median(IEnumerable<double> values) => Timings.MedianOf(values);

    static string Markdown(Dictionary<string, Dictionary<int, List<Figure>>> figures, Dictionary<(string, int), int> identical, MachineInfo machine, DateTime started, double seconds, int rounds, int generate)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"_Generated by `dotnet run -c Release --project bench/MoeCluster.Bench.Cluster -- served --write docs/BENCHMARKS.md` on {started:yyyy-MM-dd HH:mm} UTC in {seconds:0} s; {rounds} rounds after a warm-up round, each running every workload on every setup back to back (the first setup rotating)._");
        sb.AppendLine();
        sb.AppendLine($"- **Machine:** {machine.CpuModel}, {machine.Cores} cores, shared (load average at start: {machine.LoadAverage}; at end: {MachineInfo.CurrentLoad()}); torch {get_num_threads()} intra-op threads for the whole process (all nodes share it).");
        sb.AppendLine($"- **Model and requests:** {BenchSmall.Name} ({BenchSmall.Describe(BenchSmall.Config)}), float32 compute; {PromptTokens}-token random prompts (new ones every round, the same for every setup), {generate} tokens generated each, greedy; 1 sequence, and 32 submitted at once.");
        sb.AppendLine("- **Decode tokens/s:** tokens generated after every sequence of the run had its first, over the time from then to the last token, as the caller of `IGenerationService` receives them (model core: the decode steps after the prompt step). \"With prompt\" is all generated tokens over the whole run.");
        sb.AppendLine();
        sb.AppendLine("| setup | sequences | decode tok/s, best round | decode tok/s, median | with prompt tok/s, median | of model core (medians) | CPU ms per generated token (median) | activation bytes sent per generated token | messages per generated token | tokens = LocalEngine's |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        double Med(string setup, int w) => Median(figures[setup][w].Select(f => f.DecodeTokensPerSecond));
        foreach (var w in Workloads)
            foreach (var (name, byWorkload) in figures)
            {
                var list = byWorkload[w];
                double bytes = list.Sum(f => f.Bytes) / list.Sum(f => f.Generated), messages = list.Sum(f => f.Messages) / list.Sum(f => f.Generated);
                bool remote = name.StartsWith("3-node");
                string same = identical.TryGetValue((name, w), out var n) ? $"{n}/{w * rounds}" : "–";
                sb.AppendLine($"| {name} | {w} | {list.Max(f => f.DecodeTokensPerSecond):0.0} | {Med(name, w):0.0} | {Median(list.Select(f => f.TokensPerSecondWithPrompt)):0.0} | {Med(name, w) / Med("model core", w):0.00} | {Median(list.Select(f => 1000 * f.CpuSeconds / f.Generated)):0.0} | {(remote ? bytes.ToString("0") : "–")} | {(remote ? messages.ToString("0.00") : "–")} | {same} |");
            }
        sb.AppendLine();
        sb.AppendLine("| Goal (issue 12.4) | 1 sequence | 32 sequences | goal | met |");
        sb.AppendLine("|---|---:|---:|---|---|");
        void Goal(string label, Func<int, double> ratio, double goal, bool atMost = false)
        {
            double a = ratio(1), b = ratio(32);
            bool met = atMost ? a <= goal && b <= goal : a >= goal && b >= goal;
            sb.AppendLine($"| {label} | {a:0.00} | {b:0.00} | {(atMost ? "≤" : "≥")} {goal:0.##} | {(met ? "yes" : "**no**")} |");
        }
        void PerWorkloadGoal(string label, Func<int, double> ratio, double goal1, double goal32)
        {
            double a = ratio(1), b = ratio(32);
            sb.AppendLine($"| {label} | {a:0.00} | {b:0.00} | ≥ {goal1:0.##} (1), ≥ {goal32:0.##} (32) | {(a >= goal1 && b >= goal32 ? "yes" : "**no**")} |");
        }
        PerWorkloadGoal("LocalEngine ÷ model core", w => Med("LocalEngine", w) / Med("model core", w), 0.8, 0.9);
        PerWorkloadGoal("1-node cluster ÷ model core", w => Med("1-node cluster", w) / Med("model core", w), 0.8, 0.9);
        Goal("3-node cluster (wire float32) ÷ 1-node cluster", w => Med("3-node cluster, wire float32", w) / Med("1-node cluster", w), 0.75);
        Goal("3-node cluster (wire bfloat16) ÷ 1-node cluster", w => Med("3-node cluster, wire bfloat16", w) / Med("1-node cluster", w), 0.75);
        double BytesPerToken(string setup, int w) => figures[setup][w].Sum(f => f.Bytes) / figures[setup][w].Sum(f => f.Generated);
        Goal("bytes per generated token, wire bfloat16 ÷ float32", w => BytesPerToken("3-node cluster, wire bfloat16", w) / BytesPerToken("3-node cluster, wire float32", w), 0.5, atMost: true);
        return sb.ToString();
    }
}
