using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Bench.Measurement;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.Peer;

/// <summary>Where the peer's files are: the HF checkpoint both sides read, its GGUF conversions (float32, and float16
/// beside our bfloat16: same bytes per weight), and the directory with node-llama-cpp and the peer scripts.</summary>
public sealed record PeerSetup(string Checkpoint, string GgufF32, string? GgufF16, string NodeDir, int Rounds);

/// <summary>One figure of one engine in one round: single-stream decode tokens/s, or 32-sequence aggregate decode
/// tokens/s (decode phase only) and with the prompt phase counted.</summary>
public sealed record PeerFigure(string Engine, string Precision, string Workload, double TokensPerSecond);

/// <summary>
/// MoeCluster and llama.cpp (node-llama-cpp's prebuilt CPU binary through ../shared/peers/llama_bench.mjs) on the same
/// checkpoint and thread count, rounds interleaving the engines so both see the same machine load. Workloads are the
/// peer script's: one sequence decoding 64 tokens after a 128-token prompt; 32 sequences with 16-token prompts
/// generating 32 tokens each in lock-step (one batched step per token). MoeCluster runs its model core
/// (<c>MoeTransformer.Forward</c> with greedy argmax, the peer's loop includes its sampler) and its served single-process
/// path (<c>LocalEngine</c>, continuous batching and sampling included) for the 32 sequences.
/// </summary>
public sealed class PeerBenchmark(PeerSetup setup, Action<string> log)
{
    const int Prompt = 128, Decode = 64, Sequences = 32, SeqPrompt = 16, SeqGenerate = 32;
    static readonly int[] GreedyPrompt = [1, 100, 200, 300, 400];

    public sealed record Result(IReadOnlyList<PeerFigure> Figures, string? PeerSkipped, string GreedyCheck, string LlamaRelease);

    public Result Run()
    {
        var figures = new List<PeerFigure>();
        string? skipped = PeerProblem();
        if (skipped is not null) log($"llama.cpp peer skipped: {skipped}");
        string release = "";
        var ours = new[] { ScalarType.Float32, ScalarType.BFloat16 }
            .ToDictionary(d => d, d => MoeTransformer.Load(setup.Checkpoint, new ModuleOptions(d, CPU), maxPositions: 512));
        try
        {
            string greedy = skipped is null ? GreedyCheck(ours[ScalarType.Float32]) : "not checked (peer skipped)";
            log(greedy);
            for (int round = 1; round <= setup.Rounds; round++)
            {
                log($"round {round}/{setup.Rounds} (load {MachineInfo.CurrentLoad()})");
                foreach (var (dtype, model) in ours)
                {
                    string precision = dtype == ScalarType.Float32 ? "float32" : "bfloat16";
                    figures.AddRange(Ours(model, precision));
                    var gguf = dtype == ScalarType.Float32 ? setup.GgufF32 : setup.GgufF16;
                    if (skipped is null && gguf is not null)
                    {
                        var (peer, r) = Llama(gguf, dtype == ScalarType.Float32 ? "float32" : "float16");
                        figures.AddRange(peer);
                        release = r;
                    }
                }
                foreach (var f in figures.TakeLast(12)) log($"  {f.Engine,-28} {f.Precision,-9} {f.Workload,-36} {f.TokensPerSecond,8:0.0} tok/s");
            }
            return new Result(figures, skipped, greedy, release);
        }
        finally { foreach (var m in ours.Values) m.Dispose(); }
    }

    string? PeerProblem()
    {
        if (!File.Exists(setup.GgufF32)) return $"{setup.GgufF32} not found (convert the checkpoint with ../shared/peers/to_gguf.py)";
        if (!Directory.Exists(Path.Combine(setup.NodeDir, "node_modules", "node-llama-cpp")))
            return $"node-llama-cpp is not installed in {setup.NodeDir} (npm i -E node-llama-cpp@3.21.1 failed or was not run)";
        foreach (var script in new[] { "llama_bench.mjs", "llama_greedy.mjs" })
            if (!File.Exists(Path.Combine(setup.NodeDir, script))) return $"{script} missing from {setup.NodeDir} (copy ../shared/peers/llama_*.mjs)";
        try { Node("--version"); } catch (Exception e) { return $"node does not run: {e.Message}"; }
        return null;
    }

    /// <summary>Greedy continuation of the same token ids by both engines, float32.</summary>
    string GreedyCheck(MoeTransformer model)
    {
        var line = Node($"llama_greedy.mjs {setup.GgufF32} --ids {string.Join(',', GreedyPrompt)} --n 16 --threads 2").Last();
        var theirs = JsonNode.Parse(line)!["gen"]!.AsArray().Select(n => (int)n!).ToList();
        var mine = Greedy(model, GreedyPrompt, theirs.Count);
        int same = mine.Zip(theirs).TakeWhile(p => p.First == p.Second).Count();
        return $"greedy check (float32, prompt {string.Join(',', GreedyPrompt)}): {same} of {theirs.Count} tokens identical before the first difference" +
            (same < theirs.Count ? $" (MoeCluster {string.Join(',', mine)}; llama.cpp {string.Join(',', theirs)})" : "");
    }

    static List<int> Greedy(MoeTransformer model, int[] prompt, int count)
    {
        using var scope = NewDisposeScope();
        var caches = model.CreateCaches(1, prompt.Length + count + 1);
        try
        {
            var result = new List<int>();
            var logits = model.ForwardTokens(prompt, StepLayout.Single(0, 0, prompt.Length), caches);
            for (int i = 0; i < count; i++)
            {
                int next = (int)logits.argmax(-1)[0].item<long>();
                result.Add(next);
                logits = model.ForwardTokens([next], StepLayout.Single(0, prompt.Length + i, 1), caches);
            }
            return result;
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    List<PeerFigure> Ours(MoeTransformer model, string precision)
    {
        var list = new List<PeerFigure>();
        var random = new Random(2026);
        int Token() => random.Next(259, model.Config.VocabSize);
        // One sequence: 128-token prompt, then 64 greedy decode steps timed together (the peer's "decode").
        var single = ModelCore.LockStepDecode.Run(model, [Enumerable.Range(0, Prompt).Select(_ => Token()).ToArray()], Decode + 1);
        list.Add(new PeerFigure("MoeCluster model core", precision, "decode, 1 sequence", single.DecodeTokensPerSecond));
        // 32 sequences in lock-step: all prompts in one step, then one batched decode step per token.
        var batch = ModelCore.LockStepDecode.Run(model, Enumerable.Range(0, Sequences).Select(_ => Enumerable.Range(0, SeqPrompt).Select(_ => Token()).ToArray()).ToList(), SeqGenerate);
        list.Add(new PeerFigure("MoeCluster model core", precision, "32 sequences, decode phase", batch.DecodeTokensPerSecond));
        list.Add(new PeerFigure("MoeCluster model core", precision, "32 sequences, prompt phase included", batch.TokensPerSecondWithPrompt));
        // The served single-process path: continuous batching, scheduling and sampling included.
        {
            using var engine = new LocalEngine(model, new BatchingOptions { MaxBatchSize = Sequences, ContextLength = SeqPrompt + SeqGenerate, MaxPrefillTokensPerStep = 1024 });
            var work = Enumerable.Range(0, Sequences).Select(i => new GenerationRequest($"p{i}", Enumerable.Range(0, SeqPrompt).Select(_ => Token()).ToArray(), SeqGenerate)).ToList();
            long start = Stopwatch.GetTimestamp();
            var finished = engine.Run(work);
            list.Add(new PeerFigure("MoeCluster LocalEngine (served)", precision, "32 sequences, prompt phase included",
                finished.Values.Sum(f => f.Generated.Count) / Stopwatch.GetElapsedTime(start).TotalSeconds));
        }
        return list;
    }

    (IEnumerable<PeerFigure>, string Release) Llama(string gguf, string precision)
    {
        var lines = Node($"llama_bench.mjs {gguf} --threads 2 --reps 2 --prompt {Prompt} --decode {Decode} --par {Sequences} --ppar {SeqPrompt} --gpar {SeqGenerate}")
            .Where(l => l.StartsWith('{')).Select(l => JsonNode.Parse(l)!).ToList();
        var figures = new List<PeerFigure>();
        string release = "";
        foreach (var j in lines)
        {
            release = j["llamaCpp"]?.ToString() ?? release;
            switch ((string?)j["bench"])
            {
                case "decode": figures.Add(new("llama.cpp (node-llama-cpp)", precision, "decode, 1 sequence", (double)j["tok_s"]!)); break;
                case "parallel":
                    figures.Add(new("llama.cpp (node-llama-cpp)", precision, "32 sequences, decode phase", (double)j["decode_agg_tok_s"]!));
                    figures.Add(new("llama.cpp (node-llama-cpp)", precision, "32 sequences, prompt phase included", (double)j["gen_agg_tok_s_incl_prompt"]!));
                    break;
            }
        }
        return (figures, release);
    }

    List<string> Node(string arguments)
    {
        var psi = new ProcessStartInfo("node", arguments) { WorkingDirectory = setup.NodeDir, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        while (p.StandardOutput.ReadLine() is { } line) lines.Add(line);
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {arguments} exited {p.ExitCode}: {stderr.Result.Trim()}");
        return lines;
    }

    /// <summary>Min and median over the rounds of each figure, the two engines side by side, and the ratios the issue
    /// asks for (MoeCluster ÷ llama.cpp, same precision class).</summary>
    public static string Markdown(Result r, MachineInfo machine, string loadAtEnd, DateTime started, double seconds, int rounds)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"_Generated by `dotnet run -c Release --project bench/MoeCluster.Bench -- peer` on {started:yyyy-MM-dd HH:mm} UTC in {seconds:0} s; {rounds} rounds interleaving the engines._");
        sb.AppendLine();
        sb.AppendLine($"- **Machine:** {machine.CpuModel}, {machine.Cores} cores, shared (load average at start: {machine.LoadAverage}; at end: {loadAtEnd}). Both engines 2 threads.");
        sb.AppendLine($"- **Peer:** {(r.PeerSkipped is null ? $"llama.cpp (release tag as the binary reports it: {r.LlamaRelease}) in node-llama-cpp 3.21.1's prebuilt CPU binary (its sampling loop runs in JavaScript, so its figures are a lower bound for llama.cpp's own server), F16 KV cache; GGUF from ../shared/peers/to_gguf.py" : $"**skipped** — {r.PeerSkipped}")}.");
        sb.AppendLine($"- **Checkpoint:** bench-small written by ../shared/peers/make_ckpt.py (HF Mixtral safetensors, float32); MoeCluster loads it with `MoeTransformer.Load`. {r.GreedyCheck}.");
        sb.AppendLine();
        sb.AppendLine("| Workload | Engine | precision | best round tok/s (min time) | median tok/s |");
        sb.AppendLine("|---|---|---|---:|---:|");
        var groups = r.Figures.GroupBy(f => (f.Workload, f.Engine, f.Precision)).OrderBy(g => g.Key.Workload).ThenBy(g => g.Key.Precision is "float32" ? 0 : 1).ThenBy(g => g.Key.Engine);
        foreach (var g in groups)
            sb.AppendLine($"| {g.Key.Workload} | {g.Key.Engine} | {g.Key.Precision} | {g.Max(f => f.TokensPerSecond):0.0} | {Median(g.Select(f => f.TokensPerSecond)):0.0} |");
        sb.AppendLine();
        if (r.PeerSkipped is null)
        {
            sb.AppendLine("| Ratio (medians) | float32 vs llama.cpp F32 | bfloat16 vs llama.cpp F16 | goal |");
            sb.AppendLine("|---|---:|---:|---|");
            void Ratio(string label, string engine, string workload, string goal)
            {
                string Cell(string ours, string theirs)
                {
                    var a = r.Figures.Where(f => f.Engine == engine && f.Workload == workload && f.Precision == ours).Select(f => f.TokensPerSecond).ToList();
                    var b = r.Figures.Where(f => f.Engine.StartsWith("llama.cpp") && f.Workload == workload && f.Precision == theirs).Select(f => f.TokensPerSecond).ToList();
                    return a.Count == 0 || b.Count == 0 ? "–" : (Median(a) / Median(b)).ToString("0.00", CultureInfo.InvariantCulture) + "×";
                }
                sb.AppendLine($"| {label} | {Cell("float32", "float32")} | {Cell("bfloat16", "float16")} | {goal} |");
            }
            Ratio("single-stream decode, model core", "MoeCluster model core", "decode, 1 sequence", "≥ 1.0×");
            Ratio("32-sequence aggregate decode, model core", "MoeCluster model core", "32 sequences, decode phase", "≥ 2×");
            Ratio("32 sequences with prompts, model core", "MoeCluster model core", "32 sequences, prompt phase included", "–");
            Ratio("32 sequences with prompts, served (LocalEngine)", "MoeCluster LocalEngine (served)", "32 sequences, prompt phase included", "–");
        }
        return sb.ToString();
    }

    static double Median(IEnumerable<double> values) => Timings.MedianOf(values);
}
