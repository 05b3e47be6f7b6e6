using System.Diagnostics;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.ModelCore;
using MoeCluster.Bench.Report;
using MoeCluster.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Bench;

/// <summary>The bench program's commands. <c>model-core</c> measures and rewrites its section of docs/BENCHMARKS.md;
/// <c>profile</c> prints the decode-step breakdown only.</summary>
public static class BenchCommands
{
    const string Usage = """
        usage: moecluster-bench model-core [--quick] [--no-write] [--doc PATH]
               moecluster-bench profile [--quick] [--dtype float32|bfloat16] [--batch N | --prefill N]
               moecluster-bench ceilings [--quick]
               moecluster-bench gemv [--quick]
               moecluster-bench decode-calls [--dtype float32|bfloat16]
               moecluster-bench native-ab [--rounds N] [--batch N]
               moecluster-bench peer [--peer-dir DIR] [--rounds N] [--no-write] [--doc PATH]
               moecluster-bench priority [--no-write] [--doc PATH]
          model-core  hardware ceilings, prefill and decode throughput of bench-small (float32 and bfloat16),
                      continuous batching and the decode profile; prints Markdown and writes it into
                      docs/BENCHMARKS.md between <!-- model-core:begin --> and <!-- model-core:end -->
                      (not in --quick runs, whose few iterations are a smoke check only)
          peer        MoeCluster beside llama.cpp (node-llama-cpp) on the same checkpoint, 2 threads each: single-stream
                      decode and 32 sequences in lock-step; DIR (default /tmp/moecluster-peer) holds bench-small-f32/,
                      bench-small-f32.gguf, bench-small-f16.gguf and nlc/ (node-llama-cpp + the peer scripts), see
                      docs/BENCHMARKS.md; the peer is skipped with a message when missing. Writes <!-- peer:begin -->
          profile     time per part (attention, router, experts, LM head, …) of a decode step (default 32 sequences);
                      with --prefill N, of a prefill step of N prompts of 128 tokens (projections, attention core, …)
          ceilings    matmul GFLOP/s and memory bandwidth only
          gemv        small-batch products (1–32 rows) of bench-small's weights by each path: linear, matmul on a
                      transposed copy, mv, MKL packed SGEMM, the SmallMatMul kernel; prints a Markdown table
          decode-calls what a batch-1 decode step's kernel calls cost beyond the bytes they stream: fixed costs,
                      each call shape with SmallMatMul's row streaming on and off, a replay of a step's calls
                      beside the step itself, the attention half's parts; prints only
          native-ab   bfloat16 decode steps (default 32 sequences) with the native AVX512-BF16 tile on and off,
                      alternating in one process for N rounds (default 6); prints min and median of the rounds
          priority    time to first token of interactive requests with and without a running batch job, with and
                      without priorities; writes docs/BENCHMARKS.md between <!-- priority:begin --> and <!-- priority:end -->
        """;

    static readonly ScalarType[] DTypes = [ScalarType.Float32, ScalarType.BFloat16];

    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help") { Console.WriteLine(Usage); return args.Length == 0 ? 2 : 0; }
        var options = args.Skip(1).ToList();
        try
        {
            var settings = new BenchSettings(Flag(options, "--quick"));
            bool noWrite = Flag(options, "--no-write");
            string? doc = Value(options, "--doc"), dtype = Value(options, "--dtype"), batch = Value(options, "--batch");
            string? prefill = Value(options, "--prefill");
            string? peerDir = Value(options, "--peer-dir"), rounds = Value(options, "--rounds");
            if (options.Count > 0) return Fail($"unknown option(s): {string.Join(" ", options)}");
            return args[0] switch
            {
                "model-core" => ModelCore(settings, writeDoc: !noWrite && !settings.Quick, doc),
                "profile" => prefill is null ? Profile(settings, dtype, batch) : PrefillProfileRun(settings, dtype, prefill),
                "ceilings" => Ceilings(settings.Quick),
                "gemv" => Gemv(settings.Quick, !noWrite && !settings.Quick, doc),
                "decode-calls" => DecodeCallsRun(dtype),
                "peer" => PeerRun(peerDir ?? "/tmp/moecluster-peer", rounds, !noWrite, doc),
                "priority" => PriorityRun(!noWrite, doc),
                "native-ab" => NativeAb(settings, rounds, batch),
                _ => Fail($"unknown command '{args[0]}'"),
            };
        }
        catch (ArgumentException e) { return Fail(e.Message); }
    }

    static int ModelCore(BenchSettings settings, bool writeDoc, string? docPath)
    {
        var started = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        var machine = MachineInfo.Read();
        int threads = UseAllCores();
        Console.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; torch threads: {threads}; {(settings.Quick ? "quick" : "full")} run");
        // Contention from other processes only ever slows a measurement down, so every figure is the best of a few
        // rounds (each figure itself a median of many steps), and rounds interleave the dtypes and the ceilings.
        HardwareCeilings? ceilings = null;
        var best = new Dictionary<(WorkloadKind, ScalarType, int), WorkloadResult>();
        var engines = new Dictionary<ScalarType, EngineResult>();
        var profiles = new Dictionary<(ScalarType, int), DecodeProfile>();
        var models = DTypes.ToDictionary(d => d, d => ModelCoreBenchmark.CreateModel(d, maxPositions: 512));
        try
        {
            for (int round = 1; round <= settings.Rounds; round++)
            {
                Console.WriteLine($"round {round}/{settings.Rounds}, ceilings:");
                var measured = HardwareCeilings.Measure(settings.Quick, Console.WriteLine);
                ceilings = ceilings is null ? measured : HardwareCeilings.Best(ceilings, measured);
                foreach (var (dtype, model) in models)
                {
                    Console.WriteLine($"round {round}/{settings.Rounds}, {BenchSmall.Name} {ReportName(dtype)}:");
                    var bench = new ModelCoreBenchmark(model, settings, Console.WriteLine);
                    foreach (var w in bench.RunAll())
                        if (!best.TryGetValue((w.Kind, dtype, w.Sequences), out var b) || w.Step.Median < b.Step.Median) best[(w.Kind, dtype, w.Sequences)] = w;
                    var e = bench.Engine();
                    if (!engines.TryGetValue(dtype, out var eb) || e.Seconds < eb.Seconds) engines[dtype] = e;
                    foreach (int batch in new[] { settings.DecodeBatch, 1 })
                    {
                        var p = bench.Profile(batch);
                        if (!profiles.TryGetValue((dtype, batch), out var pb) || p.TotalMs < pb.TotalMs) profiles[(dtype, batch)] = p;
                    }
                }
            }
        }
        finally { foreach (var m in models.Values) m.Dispose(); }
        // Rows grouped by workload, float32 then bfloat16, so the two dtypes sit side by side.
        var workloads = best.Values.OrderBy(w => w.Kind).ThenBy(w => w.Sequences).ThenBy(w => w.DType == ScalarType.BFloat16).ToList();
        var profileList = profiles.OrderByDescending(p => p.Key.Item2).ThenBy(p => p.Key.Item1 == ScalarType.BFloat16).Select(p => p.Value).ToList();
        var report = new ModelCoreReport(started, clock.Elapsed.TotalSeconds, settings, machine, MachineInfo.CurrentLoad(), threads, ceilings!,
            workloads, engines.Values.ToList(), profileList);
        var markdown = report.ToMarkdown();
        Console.WriteLine();
        Console.WriteLine(markdown);
        if (writeDoc)
        {
            var path = docPath ?? Path.Combine(BenchmarksDoc.FindRepositoryRoot(), "docs", "BENCHMARKS.md");
            BenchmarksDoc.ReplaceSection(path, "model-core", markdown);
            Console.WriteLine($"wrote the model-core section of {path}");
        }
        else Console.WriteLine("docs/BENCHMARKS.md not written (quick run or --no-write)");
        return 0;
    }

    static int PriorityRun(bool writeDoc, string? docPath)
    {
        var started = DateTime.UtcNow;
        int threads = UseAllCores();
        var machine = MachineInfo.Read();
        Console.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; torch threads: {threads}");
        var markdown = Priority.PriorityBenchmark.Markdown(Priority.PriorityBenchmark.Run(), machine, started);
        Console.WriteLine(markdown);
        if (writeDoc) BenchmarksDoc.ReplaceSection(docPath ?? Path.Combine(BenchmarksDoc.FindRepositoryRoot(), "docs", "BENCHMARKS.md"), "priority", markdown);
        return 0;
    }

    static int Ceilings(bool quick)
    {
        Console.WriteLine($"torch threads: {UseAllCores()}");
        HardwareCeilings.Measure(quick, Console.WriteLine);
        return 0;
    }

    static int PeerRun(string dir, string? roundsText, bool writeDoc, string? docPath)
    {
        int rounds = 3;
        if (roundsText is not null && (!int.TryParse(roundsText, out rounds) || rounds < 1 || rounds > 20))
            throw new ArgumentException($"--rounds '{roundsText}' must be a whole number in [1, 20]");
        var checkpoint = Path.Combine(dir, "bench-small-f32");
        if (!File.Exists(Path.Combine(checkpoint, "config.json")))
            throw new ArgumentException($"{checkpoint}/config.json not found: write the checkpoint with ../shared/peers/make_ckpt.py (docs/BENCHMARKS.md, llama.cpp section)");
        var started = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        int threads = UseAllCores();
        var machine = MachineInfo.Read();
        Console.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; torch threads: {threads}");
        var f16 = Path.Combine(dir, "bench-small-f16.gguf");
        var setup = new Peer.PeerSetup(checkpoint, Path.Combine(dir, "bench-small-f32.gguf"), File.Exists(f16) ? f16 : null, Path.Combine(dir, "nlc"), rounds);
        var result = new Peer.PeerBenchmark(setup, Console.WriteLine).Run();
        var markdown = Peer.PeerBenchmark.Markdown(result, machine, MachineInfo.CurrentLoad(), started, clock.Elapsed.TotalSeconds, rounds);
        Console.WriteLine(markdown);
        if (writeDoc) BenchmarksDoc.ReplaceSection(docPath ?? Path.Combine(BenchmarksDoc.FindRepositoryRoot(), "docs", "BENCHMARKS.md"), "peer", markdown);
        return 0;
    }

    static int DecodeCallsRun(string? dtypeName)
    {
        Console.WriteLine($"torch threads: {UseAllCores()}, load {MachineInfo.CurrentLoad()}");
        foreach (var d in dtypeName is null ? DTypes : [ParseDType(dtypeName)]) DecodeCalls.Run(d, Console.WriteLine);
        return 0;
    }

    static int Gemv(bool quick, bool writeDoc, string? docPath)
    {
        var started = DateTime.UtcNow;
        var machine = MachineInfo.Read();
        Console.WriteLine($"torch threads: {UseAllCores()}, load {machine.LoadAverage}");
        var results = GemvBenchmark.Run(quick, Console.WriteLine);
        var markdown = $"_Generated by `dotnet run -c Release --project bench/MoeCluster.Bench -- gemv` on {started:yyyy-MM-dd HH:mm} UTC; " +
            $"{machine.CpuModel}, {machine.Cores} cores, shared (load average at start: {machine.LoadAverage}; at end: {MachineInfo.CurrentLoad()}); " +
            $"torch {torch.get_num_threads()} threads, SmallMatMul {Model.Kernels.SmallMatMul.Threads} thread(s). Cells: min / median µs per call over {(quick ? 3 : 7)} batches of ~20 ms, and the weight GB/s at the min._\n\n" +
            GemvBenchmark.Markdown(results);
        Console.WriteLine();
        Console.WriteLine(markdown);
        if (writeDoc) BenchmarksDoc.ReplaceSection(docPath ?? Path.Combine(BenchmarksDoc.FindRepositoryRoot(), "docs", "BENCHMARKS.md"), "gemv", markdown);
        return 0;
    }

    static int Profile(BenchSettings settings, string? dtypeName, string? batchText)
    {
        int batch = settings.DecodeBatch;
        if (batchText is not null && (!int.TryParse(batchText, out batch) || batch < 1 || batch > 256))
            throw new ArgumentException($"--batch '{batchText}' must be a whole number of sequences in [1, 256]");
        int threads = UseAllCores();
        Console.WriteLine($"torch threads: {threads}");
        var dtypes = dtypeName is null ? DTypes : [ParseDType(dtypeName)];
        var profiles = new List<DecodeProfile>();
        foreach (var dtype in dtypes)
        {
            using var model = ModelCoreBenchmark.CreateModel(dtype, maxPositions: 512);
            profiles.Add(new ModelCoreBenchmark(model, settings, Console.WriteLine).Profile(batch));
        }
        Console.WriteLine(ModelCoreReport.ProfileMarkdown(profiles, []));
        return 0;
    }

    /// <summary>Decode steps of bench-small in bfloat16 with <see cref="NativeBFloat16Dot"/> on and off, alternating
    /// (which goes first alternates too), so both settings see the same machine load.</summary>
    static int NativeAb(BenchSettings settings, string? roundsText, string? batchText)
    {
        int rounds = 6, batch = settings.DecodeBatch;
        if (roundsText is not null && (!int.TryParse(roundsText, out rounds) || rounds < 1 || rounds > 100))
            throw new ArgumentException($"--rounds '{roundsText}' must be a whole number in [1, 100]");
        if (batchText is not null && (!int.TryParse(batchText, out batch) || batch < 1 || batch > 256))
            throw new ArgumentException($"--batch '{batchText}' must be a whole number of sequences in [1, 256]");
        if (!NativeBFloat16Dot.Available) return Fail($"the native bfloat16 tile is not available: {NativeBFloat16Dot.Unavailable}");
        var machine = MachineInfo.Read();
        Console.WriteLine($"{machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage}; torch threads: {UseAllCores()}");
        using var model = ModelCoreBenchmark.CreateModel(ScalarType.BFloat16, maxPositions: 512);
        var bench = new ModelCoreBenchmark(model, settings, _ => { });
        var steps = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        bool was = NativeBFloat16Dot.Enabled;
        try
        {
            for (int round = 0; round < rounds; round++)
                foreach (bool on in round % 2 == 0 ? new[] { true, false } : [false, true])
                {
                    NativeBFloat16Dot.Enabled = on;
                    double ms = bench.Decode(batch).StepMs;
                    steps[on].Add(ms);
                    Console.WriteLine($"  round {round + 1}, native {(on ? "on " : "off")}: {ms:0.00} ms per step (median of the round)");
                }
        }
        finally { NativeBFloat16Dot.Enabled = was; }
        double on_ = Timings.MedianOf(steps[true]), off = Timings.MedianOf(steps[false]);
        Console.WriteLine($"decode batch {batch} bfloat16, {rounds} rounds (load at end {MachineInfo.CurrentLoad()}): native on min {steps[true].Min():0.00} / median {on_:0.00} ms, " +
            $"off min {steps[false].Min():0.00} / median {off:0.00} ms; off ÷ on {off / on_:0.00}× (medians), {steps[false].Min() / steps[true].Min():0.00}× (mins)");
        return 0;
    }

    static int PrefillProfileRun(BenchSettings settings, string? dtypeName, string sequencesText)
    {
        if (!int.TryParse(sequencesText, out int sequences) || sequences < 1 || sequences > 64)
            throw new ArgumentException($"--prefill '{sequencesText}' must be a whole number of prompts in [1, 64]");
        Console.WriteLine($"torch threads: {UseAllCores()}");
        var dtypes = dtypeName is null ? DTypes : [ParseDType(dtypeName)];
        var profiles = new List<PrefillProfile>();
        foreach (var dtype in dtypes)
        {
            using var model = ModelCoreBenchmark.CreateModel(dtype, maxPositions: 512);
            profiles.Add(PrefillProfile.Measure(model, sequences, BenchSmall.PromptTokens, settings.ProfileSteps, new Random(20261124)));
        }
        Console.WriteLine(PrefillProfile.Markdown(profiles));
        return 0;
    }

    /// <summary>One intra-op thread per core; returns what torch reports back.</summary>
    static int UseAllCores()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        return torch.get_num_threads();
    }

    static ScalarType ParseDType(string name) => name.ToLowerInvariant() switch
    {
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        _ => throw new ArgumentException($"--dtype '{name}' is not supported; supported: float32, bfloat16"),
    };

    static string ReportName(ScalarType t) => ModelCoreReport.DTypeName(t);

    static bool Flag(List<string> options, string name) => options.Remove(name);

    static string? Value(List<string> options, string name)
    {
        int i = options.IndexOf(name);
        if (i < 0) return null;
        if (i + 1 >= options.Count) throw new ArgumentException($"{name} needs a value");
        var value = options[i + 1];
        options.RemoveRange(i, 2);
        return value;
    }

    static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }
}
