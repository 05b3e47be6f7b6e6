using System.Diagnostics;
using MoeCluster.Bench.Measurement;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>How many steps each measurement takes; quick mode is a smoke check, not a figure to publish.</summary>
public sealed record BenchSettings(bool Quick)
{
    /// <summary>Every figure is the best of this many rounds (the ceilings too).</summary>
    public int Rounds => Quick ? 1 : 3;
    public int PrefillBatch => 8;
    public int DecodeBatch => 32;
    public int PrefillWarmup => 1;
    public int PrefillRuns => Quick ? 2 : 5;
    public int DecodeWarmup => Quick ? 1 : 3;
    public int DecodeRuns(int batch) => Quick ? 4 : batch == 1 ? 32 : 12;
    public int EngineRequests => Quick ? 8 : 32;
    public int EngineMaxTokens => Quick ? 4 : 32;
    public int ProfileSteps => Quick ? 3 : 8;
}

/// <summary>Prefill and decode throughput of the model core on bench-small, driven through <c>MoeTransformer.Forward</c>
/// with hand-made step layouts, so nothing but the model is timed.</summary>
public sealed class ModelCoreBenchmark(MoeTransformer model, BenchSettings settings, Action<string> log)
{
    readonly ModelConfig config = model.Config;
    readonly ModelCost cost = new(model.Config);
    readonly Random random = new(20261124);
    ScalarType DType => model.Options.DType;
    int ElementSize => DType == ScalarType.BFloat16 ? 2 : 4;

    public static MoeTransformer CreateModel(ScalarType dtype, int maxPositions)
    {
        var model = new MoeTransformer(BenchSmall.Config, new ModuleOptions(dtype, CPU), maxPositions);
        ModuleWeights.InitializeRandom(model, seed: 1234);
        return model;
    }

    public IEnumerable<WorkloadResult> RunAll()
    {
        yield return Prefill(1);
        yield return Prefill(settings.PrefillBatch);
        yield return Decode(1);
        yield return Decode(settings.DecodeBatch);
    }

    /// <summary><paramref name="sequences"/> prompts of 128 tokens in one step, each into its own KV-cache slot.</summary>
    public WorkloadResult Prefill(int sequences)
    {
        int n = BenchSmall.PromptTokens;
        var caches = model.CreateCaches(sequences, n);
        try
        {
            var layout = new StepLayout(Enumerable.Range(0, sequences).Select(s => new SequenceSegment(s, 0, n)).ToArray());
            var experts = new ActiveExperts(config);
            using var tokens = RandomTokens(sequences * n);
            var timings = Timings.Measure(settings.PrefillWarmup, settings.PrefillRuns, _ =>
            {
                using var logits = model.Forward(tokens, layout, caches, experts.NextStep());
            });
            var result = new WorkloadResult(WorkloadKind.Prefill, DType, sequences, sequences * n, timings,
                sequences * cost.PrefillFlops(n),
                cost.StepBytes(experts.MeanPerLayer, sequences * n, sequences * n * (n + 1) / 2.0, ElementSize));
            Log(result);
            return result;
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    /// <summary><paramref name="sequences"/> sequences prefilled with 128-token prompts, then pure-decode steps of one
    /// token each, fed back greedily. Step time is Forward alone.</summary>
    public WorkloadResult Decode(int sequences)
    {
        int prompt = BenchSmall.PromptTokens, warmup = settings.DecodeWarmup, runs = settings.DecodeRuns(sequences);
        var caches = model.CreateCaches(sequences, prompt + warmup + runs);
        try
        {
            var next = PrefillSlots(sequences, caches);
            var experts = new ActiveExperts(config);
            var measuredKeys = new List<double>();
            var timings = Timings.Measure(warmup, runs, step =>
            {
                int position = prompt + step;
                var layout = new StepLayout(Enumerable.Range(0, sequences).Select(s => new SequenceSegment(s, position, 1)).ToArray());
                using var scope = NewDisposeScope();
                var logits = model.Forward(next, layout, caches, step >= warmup ? experts.NextStep() : null);
                next.Dispose();
                next = logits.argmax(-1).DetachFromDisposeScope();
                if (step >= warmup) measuredKeys.Add(position + 1);
            });
            next.Dispose();
            double keys = measuredKeys.Average();
            var result = new WorkloadResult(WorkloadKind.Decode, DType, sequences, sequences, timings,
                sequences * cost.DecodeFlops(keys),
                cost.StepBytes(experts.MeanPerLayer, sequences, sequences * keys, ElementSize));
            Log(result);
            return result;
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    /// <summary>Decode batch 32 with every part of the layer timed on its own (see <see cref="DecodeProfile"/>).</summary>
    public DecodeProfile Profile(int sequences)
    {
        int prompt = BenchSmall.PromptTokens, steps = settings.ProfileSteps;
        var caches = model.CreateCaches(sequences, prompt + steps + 1);
        try
        {
            using var tokens = PrefillSlots(sequences, caches);
            return DecodeProfile.Measure(model, caches, tokens, prompt, steps);
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    /// <summary>32 requests of 128 prompt tokens through continuous batching, greedy, no stop token.</summary>
    public EngineResult Engine()
    {
        int requests = settings.EngineRequests, maxTokens = settings.EngineMaxTokens, prompt = BenchSmall.PromptTokens;
        using var engine = new LocalEngine(model, new BatchingOptions
        {
            MaxBatchSize = requests, ContextLength = prompt + maxTokens, MaxPrefillTokensPerStep = 1024,
        });
        var work = Enumerable.Range(0, requests)
            .Select(i => new GenerationRequest($"r{i}", Enumerable.Range(0, prompt).Select(_ => random.Next(config.VocabSize)).ToArray(), maxTokens))
            .ToList();
        long start = Stopwatch.GetTimestamp();
        var finished = engine.Run(work);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var result = new EngineResult(DType, requests, prompt, maxTokens, finished.Values.Sum(f => f.Generated.Count), seconds);
        log($"  LocalEngine {requests}×({prompt}+{maxTokens}) {DType}: {result.GeneratedPerSecond:0.0} generated tok/s, " +
            $"{result.AllTokensPerSecond:0.0} tok/s incl. prompts, {seconds:0.00} s");
        return result;
    }

    /// <summary>Prefills slots 0..n-1 with random 128-token prompts, 8 per step; returns each slot's greedy next token [n].</summary>
    Tensor PrefillSlots(int sequences, IReadOnlyList<KvCache> caches)
    {
        int n = BenchSmall.PromptTokens;
        var firsts = new List<Tensor>();
        using var scope = NewDisposeScope();
        for (int first = 0; first < sequences; first += settings.PrefillBatch)
        {
            int count = Math.Min(settings.PrefillBatch, sequences - first);
            var layout = new StepLayout(Enumerable.Range(first, count).Select(s => new SequenceSegment(s, 0, n)).ToArray());
            firsts.Add(model.Forward(RandomTokens(count * n), layout, caches).argmax(-1));
        }
        return cat(firsts, 0).DetachFromDisposeScope();
    }

    Tensor RandomTokens(int count) =>
        tensor(Enumerable.Range(0, count).Select(_ => (long)random.Next(config.VocabSize)).ToArray(), ScalarType.Int64);

    void Log(WorkloadResult r) =>
        log($"  {r.Name,-16} {r.DType,-8} {r.StepMs,9:0.0} ms/step {r.TokensPerSecond,9:0.0} tok/s " +
            $"{r.Gflops,7:0.0} GFLOP/s {r.GBs,6:0.0} GB/s  (load {MachineInfo.CurrentLoad()})");

    /// <summary>Collects Forward's per-layer routing counts to tell how many distinct experts each step ran.</summary>
    sealed class ActiveExperts(ModelConfig config)
    {
        readonly List<long[][]> steps = [];

        public long[][] NextStep()
        {
            var counts = Enumerable.Range(0, config.NumLayers).Select(_ => new long[config.NumExperts]).ToArray();
            steps.Add(counts);
            return counts;
        }

        /// <summary>Experts with at least one token, averaged over layers and steps.</summary>
        public double MeanPerLayer => steps.Count == 0 ? config.TopK : steps.SelectMany(s => s).Average(layer => layer.Count(t => t > 0));
    }
}
