using MoeCluster.Bench.Measurement;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>
/// What one kernel call of a decode step costs beyond the bytes it streams (issue 12, goal 4): an empty parallel
/// region, a call on a tiny weight (the fixed cost), and the weights of a batch-1 step streamed the way the step
/// streams them — 16 distinct experts of bench-small (more than the last-level cache holds) through gate|up then
/// down, and the LM head — as µs per call and GB/s. Prints only.
/// </summary>
public static class DecodeCalls
{
    sealed class Nothing : IParallelWork { public void Run(int thread, int threads) { } }

    public static void Run(ScalarType dtype, Action<string> log)
    {
        if (Environment.GetEnvironmentVariable("MOECLUSTER_REPLAY") is not null) { Replay(dtype, log); return; }
        using var _ = no_grad();
        int threads = SmallMatMul.Threads;
        // Other processes share the cores: every figure is the best of 7 batches, and where the kernel has an on/off
        // switch the two settings alternate batch by batch, so both see the same load.
        double Us(Action a, int reps)
        {
            for (int i = 0; i < Math.Max(2, reps / 10); i++) a();
            return Enumerable.Range(0, 7).Select(_ => Timings.Measure(0, 1, _ => { for (int i = 0; i < reps; i++) a(); }).Best / reps * 1e6).Min();
        }
        string OnOff(Action a, int reps, long bytes)
        {
            double on = double.MaxValue, off = double.MaxValue;
            for (int i = 0; i < Math.Max(2, reps / 10); i++) a();
            for (int round = 0; round < 7; round++)
                foreach (bool p in new[] { false, true })
                {
                    SmallMatMul.Streaming = p;
                    double us = Timings.Measure(0, 1, _ => { for (int i = 0; i < reps; i++) a(); }).Best / reps * 1e6;
                    if (p) on = Math.Min(on, us); else off = Math.Min(off, us);
                }
            SmallMatMul.Streaming = true;
            return $"{on,8:0.0} µs {bytes / (on * 1e3),5:0.0} GB/s  (row stream off: {off,8:0.0} µs {bytes / (off * 1e3),5:0.0} GB/s)";
        }
        log($"dtype {dtype}, {threads} threads");
        log($"  empty OmpTeam region:           {Us(() => OmpTeam.Run(new Nothing(), threads), 20000),8:0.00} µs");
        using var x = randn([1, 512]).to(dtype);
        using var tiny = randn([64, 512]).to(dtype);
        using var small = randn([256, 512]).to(dtype);
        log($"  SmallMatMul 64×512 (1 thread):  {Us(() => SmallMatMul.Run(x, [new MatMulSegment(tiny)]).Dispose(), 5000),8:0.00} µs");
        log($"  SmallMatMul 256×512:            {Us(() => SmallMatMul.Run(x, [new MatMulSegment(small)]).Dispose(), 5000),8:0.00} µs");
        const int E = 16, I = 1408, D = 512;
        var gates = Enumerable.Range(0, E).Select(_ => (randn([I, D]) * 0.02).to(dtype)).ToArray();
        var ups = Enumerable.Range(0, E).Select(_ => (randn([I, D]) * 0.02).to(dtype)).ToArray();
        var downs = Enumerable.Range(0, E).Select(_ => (randn([D, I]) * 0.02).to(dtype)).ToArray();
        long es = gates[0].ElementSize, upBytes = 2L * I * D * es, downBytes = (long)D * I * es;
        using var h = randn([1, I]).to(dtype);
        int e = 0;
        double guWarm = Us(() => SmallMatMul.Run(x, [new MatMulSegment(gates[0], Up: ups[0])]).Dispose(), 400);
        log($"  expert gate|up, one repeated:   {guWarm,8:0.0} µs {upBytes / (guWarm * 1e3),5:0.0} GB/s (from cache)");
        log($"  expert gate|up, 16 cycled:      " + OnOff(() => { SmallMatMul.Run(x, [new MatMulSegment(gates[e], Up: ups[e])]).Dispose(); e = (e + 1) % E; }, 400, upBytes));
        log($"  expert gate, up as 2 segments:  " + OnOff(() => { SmallMatMul.Run(x, [new MatMulSegment(gates[e]), new MatMulSegment(ups[e])]).Dispose(); e = (e + 1) % E; }, 400, upBytes));
        log($"  expert gate alone:              " + OnOff(() => { SmallMatMul.Run(x, [new MatMulSegment(gates[e])]).Dispose(); e = (e + 1) % E; }, 400, upBytes / 2));
        log($"  expert down, 16 cycled:         " + OnOff(() => { SmallMatMul.Run(h, [new MatMulSegment(downs[e])]).Dispose(); e = (e + 1) % E; }, 400, downBytes));
        log($"  expert gate|up + down, cycled:  " + OnOff(() => { using var y = SmallMatMul.Run(x, [new MatMulSegment(gates[e], Up: ups[e])]); SmallMatMul.Run(y, [new MatMulSegment(downs[e])]).Dispose(); e = (e + 1) % E; }, 400, upBytes + downBytes));
        using var head = (randn([32000, D]) * 0.02).to(dtype);
        long headBytes = head.NumberOfElements * es;
        log($"  LM head 32000×512:              " + OnOff(() => SmallMatMul.Run(x, [new MatMulSegment(head)]).Dispose(), 30, headBytes));
        using var big = randn([128L << 20]).to(dtype);
        double sum = Us(() => big.sum().Dispose(), 5);
        log($"  torch sum of {big.NumberOfElements * es >> 20} MiB:            {sum,8:0.0} µs  {big.NumberOfElements * es / (sum * 1e3),5:0.0} GB/s");
        foreach (var t in gates.Concat(ups).Concat(downs)) t.Dispose();
        big.Dispose();
    }

    /// <summary>A batch-1 step of bench-small twice: <c>Forward</c> as the model runs it, and its kernel calls alone on
    /// the same weights in the same order (q|k|v, o, gate|up and down of two experts per layer, LM head), each call
    /// timed — the difference is what the step spends outside the kernels' weight streaming.</summary>
    static void Replay(ScalarType dtype, Action<string> log)
    {
        // Settings compared (alternating step by step): "streaming:…", e.g. MOECLUSTER_REPLAY="0:0,1:0".
        var settings = (Environment.GetEnvironmentVariable("MOECLUSTER_REPLAY") ?? "0:0,0:1").Split(',')
            .Select(v => v.Split(':')).Select(v => (Variant: int.Parse(v[0]), Prefetch: v[1] == "1")).ToArray();
        using var model = ModelCoreBenchmark.CreateModel(dtype, maxPositions: 512);
        var config = model.Config;
        var caches = model.CreateCaches(1, 512);
        using var x = randn([1, config.HiddenSize]).to(dtype);
        using var attended = randn([1, config.NumHeads * config.HeadDim]).to(dtype);
        using var hidden = randn([1, config.ExpertIntermediateSize]).to(dtype);
        var parts = new[] { "q|k|v", "o", "gate|up", "down", "LM head", "Forward" };
        var perStep = settings.Select(_ => parts.ToDictionary(p => p, _ => new List<double>())).ToArray();
        var next = tensor(new long[] { 1 });
        int position = 0, steps = 30 * settings.Length;
        for (int step = 0; step < steps; step++)
        {
            int which = step % settings.Length;
            SmallMatMul.Streaming = settings[which].Variant == 1;
            var sums = parts.ToDictionary(p => p, _ => 0.0);
            void Time(string part, Func<Tensor> call)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                call().Dispose();
                sums[part] += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds * 1e3;
            }
            for (int l = 0; l < config.NumLayers; l++)
            {
                var layer = model.Layers[l];
                var a = layer.self_attn;
                Time("q|k|v", () => SmallMatMul.Run(x, [a.q_proj.Segment, a.k_proj.Segment, a.v_proj.Segment]));
                Time("o", () => SmallMatMul.Run(attended, [a.o_proj.Segment]));
                foreach (int e in new[] { (step + l) % config.NumExperts, (step + l + 3) % config.NumExperts })
                {
                    var w = layer.Moe!.experts[e].parameters().ToArray();   // gate, up, down
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
            foreach (var (p, us) in sums) perStep[which][p].Add(us);
        }
        SmallMatMul.Streaming = true;
        next.Dispose();
        foreach (var c in caches) c.Dispose();
        static double Median(List<double> v) { var s = v.Skip(3).Order().ToArray(); return s[s.Length / 2]; }
        log($"  replayed batch-1 step ({dtype}), median µs per step, settings alternating step by step:");
        log($"    {"setting",-10}" + string.Concat(parts.Select(p => $"{p,9}")) + "  kernels");
        for (int i = 0; i < settings.Length; i++)
        {
            var m = parts.Select(p => Median(perStep[i][p])).ToArray();
            log($"    {settings[i].Variant + ":" + (settings[i].Prefetch ? 1 : 0),-10}" + string.Concat(m.Select(v => $"{v,9:0}")) + $"{m.Take(5).Sum(),9:0}");
        }
    }
}
