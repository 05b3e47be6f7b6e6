using System.Diagnostics;
using MoeCluster.Bench.Measurement;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>
/// What the kernel calls of a batch-1 decode step cost beyond the bytes they stream (issue 12, goal 4). Prints, per
/// dtype: the fixed costs (an empty parallel region, a call on a weight that fits in L2); each call shape of the step
/// as µs per call and GB/s with <see cref="SmallMatMul.Streaming"/> on and off (16 distinct experts cycled, more than
/// the last-level cache holds, so the weights come from memory as in a step); a replay of a whole step's kernel calls
/// on bench-small's own weights in the step's order, beside <c>Forward</c> of a real step — the difference is what the
/// step spends outside the kernels; and the attention half's parts. Other processes share the cores, so on/off
/// settings alternate batch by batch (step by step in the replay) and every figure is a best or a median of many.
/// </summary>
public static class DecodeCalls
{
    sealed class Nothing : IParallelWork { public void Run(int thread, int threads) { } }

    public static void Run(ScalarType dtype, Action<string> log)
    {
        using var _ = no_grad();
        int threads = SmallMatMul.Threads;
        log($"dtype {dtype}, {threads} threads");
        log($"  empty OmpTeam region:           {Us(() => OmpTeam.Run(new Nothing(), threads), 20000),8:0.00} µs");
        using var x = randn([1, 512]).to(dtype);
        using var tiny = randn([64, 512]).to(dtype);
        log($"  SmallMatMul 64×512 (1 thread):  {Us(() => SmallMatMul.Run(x, [new MatMulSegment(tiny)]).Dispose(), 5000),8:0.00} µs");
        using (var router = randn([8, 512]).to(dtype))
            log($"  router logits 8×512 + softmax:  {Us(() => { using var l = SmallMatMul.Run(x, [new MatMulSegment(router)]); l.to(ScalarType.Float32).softmax(-1).Dispose(); }, 5000),8:0.00} µs " +
                $"(libtorch linear: {Us(() => { using var l = nn.functional.linear(x, router); l.to(ScalarType.Float32).softmax(-1).Dispose(); }, 5000):0.00} µs)");

        const int E = 16, I = 1408, D = 512;
        var gates = Enumerable.Range(0, E).Select(_ => (randn([I, D]) * 0.02).to(dtype)).ToArray();
        var ups = Enumerable.Range(0, E).Select(_ => (randn([I, D]) * 0.02).to(dtype)).ToArray();
        var downs = Enumerable.Range(0, E).Select(_ => (randn([D, I]) * 0.02).to(dtype)).ToArray();
        long es = gates[0].ElementSize, upBytes = 2L * I * D * es, downBytes = (long)D * I * es;
        using var h = randn([1, I]).to(dtype);
        int e = 0;
        log($"  expert gate|up, 16 cycled:      " + OnOff(() => { SmallMatMul.Run(x, [new MatMulSegment(gates[e], Up: ups[e])]).Dispose(); e = (e + 1) % E; }, 400, upBytes));
        log($"  expert down, 16 cycled:         " + OnOff(() => { SmallMatMul.Run(h, [new MatMulSegment(downs[e])]).Dispose(); e = (e + 1) % E; }, 400, downBytes));
        using var head = (randn([32000, D]) * 0.02).to(dtype);
        log($"  LM head 32000×512:              " + OnOff(() => SmallMatMul.Run(x, [new MatMulSegment(head)]).Dispose(), 30, head.NumberOfElements * es));
        foreach (var t in gates.Concat(ups).Concat(downs)) t.Dispose();
        using (var big = randn([128L << 20]).to(dtype))
            log($"  torch sum of {big.NumberOfElements * es >> 20} MiB (the ceiling's read): {big.NumberOfElements * es / (Us(() => big.sum().Dispose(), 5) * 1e3),5:0.0} GB/s");
        Replay(dtype, log);
        AttentionParts(dtype, log);
    }

    /// <summary>Best µs per call of 7 batches of <paramref name="reps"/> calls, after a warm-up.</summary>
    static double Us(Action call, int reps)
    {
        for (int i = 0; i < Math.Max(2, reps / 10); i++) call();
        return Enumerable.Range(0, 7).Min(_ => Timings.Measure(0, 1, _ => { for (int i = 0; i < reps; i++) call(); }).Best / reps * 1e6);
    }

    /// <summary>The call with row streaming on and off, alternating batch by batch: best µs and GB/s of each.</summary>
    static string OnOff(Action call, int reps, long bytes)
    {
        double on = double.MaxValue, off = double.MaxValue;
        for (int i = 0; i < Math.Max(2, reps / 10); i++) call();
        for (int round = 0; round < 7; round++)
            foreach (bool streaming in new[] { false, true })
            {
                SmallMatMul.Streaming = streaming;
                double us = Timings.Measure(0, 1, _ => { for (int i = 0; i < reps; i++) call(); }).Best / reps * 1e6;
                if (streaming) on = Math.Min(on, us); else off = Math.Min(off, us);
            }
        SmallMatMul.Streaming = true;
        return $"{on,8:0.0} µs {bytes / (on * 1e3),5:0.0} GB/s  (row streaming off: {off,8:0.0} µs {bytes / (off * 1e3),5:0.0} GB/s)";
    }

    /// <summary>A batch-1 step of bench-small two ways, row streaming off and on alternating step by step:
    /// <c>Forward</c> as the model runs it, and its kernel calls alone on the same weights in the same order (q|k|v, o,
    /// gate|up and down of two experts per layer, LM head), each call timed. Medians over 30 steps of each setting.</summary>
    static void Replay(ScalarType dtype, Action<string> log)
    {
        using var model = ModelCoreBenchmark.CreateModel(dtype, maxPositions: 512);
        var config = model.Config;
        var caches = model.CreateCaches(1, 512);
        using var x = randn([1, config.HiddenSize]).to(dtype);
        using var attended = randn([1, config.NumHeads * config.HeadDim]).to(dtype);
        using var hidden = randn([1, config.ExpertIntermediateSize]).to(dtype);
        string[] parts = ["q|k|v", "o", "gate|up", "down", "LM head", "Forward"];
        var perStep = new[] { false, true }.Select(_ => parts.ToDictionary(p => p, _ => new List<double>())).ToArray();
        var next = tensor(new long[] { 1 });
        int position = 0;
        for (int step = 0; step < 60; step++)
        {
            int streaming = step % 2;
            SmallMatMul.Streaming = streaming == 1;
            var sums = parts.ToDictionary(p => p, _ => 0.0);
            void Time(string part, Func<Tensor> call)
            {
                long t0 = Stopwatch.GetTimestamp();
                call().Dispose();
                sums[part] += Stopwatch.GetElapsedTime(t0).TotalMilliseconds * 1e3;
            }
            for (int l = 0; l < config.NumLayers; l++)
            {
                var layer = model.Layers[l];
                var a = layer.self_attn;
                Time("q|k|v", () => SmallMatMul.Run(x, [a.q_proj.Segment, a.k_proj.Segment, a.v_proj.Segment]));
                Time("o", () => SmallMatMul.Run(attended, [a.o_proj.Segment]));
                foreach (int expert in new[] { (step + l) % config.NumExperts, (step + l + 3) % config.NumExperts })
                {
                    var w = layer.Moe!.experts[expert].parameters().ToArray();   // gate, up, down
                    Time("gate|up", () => SmallMatMul.Run(x, [new MatMulSegment(w[0], Up: w[1])]));
                    Time("down", () => SmallMatMul.Run(hidden, [new MatMulSegment(w[2])]));
                }
            }
            Time("LM head", () => SmallMatMul.Run(x, [model.Head.lm_head!.Segment]));
            using (no_grad())
                Time("Forward", () =>
                {
                    var logits = model.Forward(next, new StepLayout([new SequenceSegment(0, position++, 1)]), caches);
                    next.Dispose();
                    next = logits.argmax(-1);
                    return logits;
                });
            foreach (var (p, us) in sums) perStep[streaming][p].Add(us);
        }
        SmallMatMul.Streaming = true;
        next.Dispose();
        foreach (var c in caches) c.Dispose();
        log($"  replayed batch-1 step, median µs per step (8 layers), row streaming off / on alternating step by step:");
        log($"    {"streaming",-10}" + string.Concat(parts.Select(p => $"{p,9}")) + "  kernels");
        for (int s = 0; s < 2; s++)
        {
            var m = parts.Select(p => Median(perStep[s][p], skip: 3)).ToArray();
            log($"    {(s == 1 ? "on" : "off"),-10}" + string.Concat(m.Select(v => $"{v,9:0}")) + $"{m.Take(5).Sum(),9:0}");
        }
    }

    /// <summary>The attention half of a batch-1 step (norms, q|k|v, decode attention, o, residual) beside its pieces
    /// alone, on layer 0 (its weights stay in cache, so this is what attention costs beyond streaming them).</summary>
    static void AttentionParts(ScalarType dtype, Action<string> log)
    {
        using var noGrad = no_grad();
        using var model = ModelCoreBenchmark.CreateModel(dtype, maxPositions: 512);
        var config = model.Config;
        var caches = model.CreateCaches(1, 512);
        var layer = model.Layers[0];
        var a = layer.self_attn;
        var shape = new AttentionShape(config.NumHeads, config.NumKvHeads, config.HeadDim, config.SlidingWindow);
        int nq = config.NumHeads * config.HeadDim, nk = config.NumKvHeads * config.HeadDim;
        using var x = randn([1, config.HiddenSize]).to(dtype);
        var block = new List<double>(); var projections = new List<double>(); var attention = new List<double>(); var norm = new List<double>(); var add = new List<double>();
        static double Us(Action f) { long t0 = Stopwatch.GetTimestamp(); f(); return Stopwatch.GetElapsedTime(t0).TotalMilliseconds * 1e3; }
        for (int step = 0; step < 300; step++)
        {
            using var scope = NewDisposeScope();
            var layout = new StepLayout([new SequenceSegment(0, 128 + step % 64, 1)]);
            using var context = StepContext.Create(layout, model.Rotary, config, CPU);
            block.Add(Us(() => layer.Attention.Forward(x, context, caches[0])));
            projections.Add(Us(() => { SmallMatMul.Run(x, [a.q_proj.Segment, a.k_proj.Segment, a.v_proj.Segment]); SmallMatMul.Run(x, [a.o_proj.Segment]); }));
            var qkv = SmallMatMul.Run(x, [a.q_proj.Segment, a.k_proj.Segment, a.v_proj.Segment]);
            var q = qkv.narrow(1, 0, nq).view(1, config.NumHeads, config.HeadDim);
            var k = qkv.narrow(1, nq, nk).view(1, config.NumKvHeads, config.HeadDim);
            var v = qkv.narrow(1, nq + nk, nk).view(1, config.NumKvHeads, config.HeadDim);
            attention.Add(Us(() => DecodeAttention.Run(q, k, v, context.Cos, context.Sin, layout, caches[0], shape)));
            norm.Add(Us(() => layer.input_layernorm.forward(x)));
            add.Add(Us(() => { var y = x + x; }));
        }
        // The feed-forward half of the same layer: route, the experts, combine — against the experts' kernel calls alone.
        var moe = layer.Moe!;
        var route = new List<double>(); var experts = new List<double>(); var combine = new List<double>(); var kernels = new List<double>(); var whole = new List<double>();
        for (int step = 0; step < 300; step++)
        {
            using var scope = NewDisposeScope();
            var n = randn([1, config.HiddenSize]).to(dtype);
            whole.Add(Us(() => moe.Forward(n, null)));
            ExpertGroups? groups = null;
            route.Add(Us(() => groups = moe.Route(n)));
            IReadOnlyList<Tensor>? outputs = null;
            experts.Add(Us(() => outputs = moe.ExpertOutputs(n, groups!)));
            combine.Add(Us(() => MoeBlock.Combine(n, groups!, outputs!, moe.SharedOutput(n))));
            kernels.Add(Us(() =>
            {
                foreach (var g in groups!.Groups)
                {
                    var w = moe.experts[g.Expert].parameters().ToArray();
                    var hg = SmallMatMul.Run(n, [new MatMulSegment(w[0], Up: w[1])]);
                    SmallMatMul.Run(hg, [new MatMulSegment(w[2])]);
                }
            }));
            groups!.Dispose();
        }
        foreach (var c in caches) c.Dispose();
        log($"  feed-forward half of one layer, median µs: whole {Median(whole, 20):0.0}; route {Median(route, 20):0.0}; experts {Median(experts, 20):0.0} " +
            $"(their kernel calls alone {Median(kernels, 20):0.0}); combine {Median(combine, 20):0.0}");
        log($"  attention half of one layer, median µs: whole {Median(block, 20):0.0}; q|k|v + o {Median(projections, 20):0.0}; " +
            $"DecodeAttention (~160 keys) {Median(attention, 20):0.0}; one norm {Median(norm, 20):0.0}; one residual add {Median(add, 20):0.0}");
    }

    /// <summary>The median after the first <paramref name="skip"/> (warm-up) values.</summary>
    static double Median(List<double> values, int skip) => Timings.MedianOf(values.Skip(skip));
}
