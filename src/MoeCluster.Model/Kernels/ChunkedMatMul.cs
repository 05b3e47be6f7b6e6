using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>
/// <see cref="SmallMatMul"/> for any number of float32 activation rows: up to <see cref="SmallMatMul.MaxRows"/> in one
/// call, as before; more (prefill: q/k/v and o over every prompt token, experts with 33 to a few hundred tokens) in
/// near-equal chunks of at most <see cref="ChunkRows"/> rows, one kernel call each. Measured on the benchmark machine
/// (docs/BENCHMARKS.md, "Prefill"), the kernel computes a 64-row bench-small expert at 210–235 GFLOP/s where libtorch's
/// SGEMM reaches 150–195 at 40–256 rows: at these shapes MKL spends its time packing, while the kernel reads each
/// weight row once per chunk from cache and multiplies it by 4 activation rows from registers. Every output element is
/// the same dot product whatever the chunking (the kernel's sum order does not depend on M), so a row's result does
/// not depend on which other rows share its step. bfloat16 activations stay with oneDNN (see
/// <see cref="SmallMatMul.MaxRowsBFloat16"/>).
/// Legend: M activation rows, K inputs.
/// </summary>
public static class ChunkedMatMul
{
    /// <summary>Most rows per kernel call (the kernel's own limit is <see cref="SmallMatMul.RowLimit"/>).</summary>
    public static int ChunkRows { get; set; } = 64;

    /// <summary>Off: products of more than <see cref="SmallMatMul.MaxRows"/> rows go to libtorch
    /// (MOECLUSTER_PREFILL_MATMUL=0 for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_PREFILL_MATMUL") != "0";

    static readonly ThreadSwitch onThisThread = new();

    /// <summary>Sends this thread's many-row products to libtorch until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread() => onThisThread.Off();

    /// <summary>Whether <see cref="Run"/> takes x [M, K] against this weight: where <see cref="SmallMatMul.Applies"/>
    /// does, or float32 activations of more rows under the kernel's other conditions.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        SmallMatMul.Applies(x, weight) || (InChunks(x) && SmallMatMul.Supports(x, weight, int.MaxValue));

    /// <summary>x [M, K] → [M, Σ segment rows], as <see cref="SmallMatMul.Run"/>, chunked over the rows when M is
    /// above <see cref="SmallMatMul.MaxRows"/> (whatever the switches: they decide <see cref="Applies"/>).</summary>
    public static Tensor Run(Tensor x, IReadOnlyList<MatMulSegment> segments)
    {
        long M = x.size(0);   // size(d), not shape: decode calls pass through here (see SmallMatMul)
        if (M <= SmallMatMul.MaxRows) return SmallMatMul.Run(x, segments);
        int rowsPerChunk = Math.Clamp(ChunkRows, 1, SmallMatMul.RowLimit);
        long chunks = (M + rowsPerChunk - 1) / rowsPerChunk;
        // Near-equal chunks in multiples of 4 (the kernel's widest tile), the last one taking the remainder.
        long size = Math.Min(rowsPerChunk, ((M + chunks - 1) / chunks + 3) / 4 * 4);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>((int)chunks + 1);
        for (long start = 0; start < M; start += size)
            parts.Add(SmallMatMul.Run(x.narrow(0, start, Math.Min(size, M - start)), segments));
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    static bool InChunks(Tensor x) =>
        Enabled && !onThisThread.IsOff && SmallMatMul.Enabled && !SmallMatMul.IsOffOnThisThread && Vector512.IsHardwareAccelerated
        && x.dtype == ScalarType.Float32 && x.dim() == 2 && x.size(0) > SmallMatMul.MaxRows;
}
