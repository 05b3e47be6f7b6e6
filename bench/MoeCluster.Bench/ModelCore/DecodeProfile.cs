using System.Diagnostics;
using MoeCluster.Bench.Measurement;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>Where a pure-decode step's time goes: the layer's public pieces (the ones the cluster runtime also calls)
/// run one by one, exactly as <c>DecoderLayer.Forward</c> composes them, each under its own stopwatch. Parts are the
/// median over steps of each part's per-step total; <see cref="ProjectionsMs"/> is timed separately, on the same
/// normalised input, and is a share of <c>attention</c>, not an extra part.</summary>
public sealed record DecodeProfile(ScalarType DType, int Sequences, IReadOnlyList<(string Part, double Ms)> Parts, double ProjectionsMs,
    double ExpertsRunPerLayer, double TokensPerExpertRun, int Steps)
{
    public static readonly string[] PartNames =
        ["embed", "attention", "router", "experts", "combine", "LM head"];

    public double TotalMs => Parts.Sum(p => p.Ms);

    public static DecodeProfile Measure(MoeTransformer model, IReadOnlyList<KvCache> caches, Tensor firstTokens, int start, int steps)
    {
        var config = model.Config;
        var layers = model.Layers;
        int sequences = (int)firstTokens.shape[0];
        var times = new StepPartTimes(PartNames);
        var projections = new List<double>();
        long expertRuns = 0, expertTokens = 0;
        var next = firstTokens.alias().DetachFromDisposeScope();
        using var _ = no_grad();
        // One untimed step first so the timed ones find warm caches and allocator.
        for (int step = -1; step < steps; step++)
        {
            int position = start + step + 1;
            var layout = new StepLayout(Enumerable.Range(0, sequences).Select(s => new SequenceSegment(s, position, 1)).ToArray());
            double projectionMs = 0;
            using var scope = NewDisposeScope();
            using var stepContext = StepContext.Create(layout, model.Rotary, config, CPU);
            T Time<T>(string part, Func<T> body) => times.Time(part, body);

            var x = Time("embed", () => model.Embed(next));
            for (int l = 0; l < config.NumLayers; l++)
            {
                var layer = layers[l];
                var moe = layer.Moe ?? throw new InvalidOperationException($"layer {l} is dense; the profile expects MoE layers only");
                var input = x;
                var (h, n) = Time("attention", () => layer.Attention.Forward(input, stepContext, caches[l]));
                projectionMs += ProjectionMs(layer.self_attn, layer.input_layernorm.forward(input));
                using var groups = Time("router", () => moe.Route(n));
                var outputs = Time("experts", () => moe.ExpertOutputs(n, groups));
                x = Time("combine", () => h + MoeBlock.Combine(n, groups, outputs, moe.SharedOutput(n)));
                if (step >= 0)
                {
                    expertRuns += groups.Groups.Count;
                    expertTokens += groups.TokensPerExpert.Sum();
                }
            }
            var logits = Time("LM head", () => model.Head.Logits(x, layout));
            next.Dispose();
            next = logits.argmax(-1).DetachFromDisposeScope();
            times.EndStep(keep: step >= 0);
            if (step >= 0) projections.Add(projectionMs);
        }
        next.Dispose();
        int runs = steps * config.NumLayers;
        return new DecodeProfile(model.Options.DType, sequences, times.Medians(),
            Timings.MedianOf(projections), (double)expertRuns / runs, (double)expertTokens / expertRuns, steps);
    }

    /// <summary>q, k, v and o projections alone: normalised [B, D]; o_proj gets a zero [B, H·Dh] input.</summary>
    static double ProjectionMs(Attention a, Tensor normalised)
    {
        using var scope = NewDisposeScope();
        var attended = zeros([normalised.shape[0], a.o_proj.weight.shape[1]], normalised.dtype);
        long t0 = Stopwatch.GetTimestamp();
        a.q_proj.forward(normalised);
        a.k_proj.forward(normalised);
        a.v_proj.forward(normalised);
        a.o_proj.forward(attended);
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
