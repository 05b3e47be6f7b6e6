using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>One weight matrix [N, K] of a <see cref="SmallMatMul"/> call, with an optional bias [N]; with
/// <see cref="Up"/> set the segment is a SwiGLU: silu(x Wᵀ) · (x Upᵀ), both read in the same pass.</summary>
public readonly record struct MatMulSegment(Tensor Weight, Tensor? Bias = null, Tensor? Up = null)
{
    public int Rows => (int)Weight.shape[0];
}

/// <summary>Which inner loops <see cref="SmallMatMul"/> runs: the AVX-512 tiles, or the scalar loop (used where
/// <see cref="Vector512"/> is not accelerated, and by the tests to cross-check the tiles).</summary>
public enum KernelPath { Vector512, Scalar }

/// <summary>
/// y = x Wᵀ for few activation rows (decode, per-expert groups), streaming each weight once from memory. At batch 1–16
/// libtorch sends these to MKL SGEMM / oneDNN with n ≤ 16, which read weights at a quarter of the bandwidth on the
/// benchmark machine (docs/BENCHMARKS.md); this kernel reads each weight row once per call, multiplies it by every
/// activation row from registers, and splits the output rows over the cores. Several segments (q|k|v, or an expert's
/// gate|up as a SwiGLU) run as one pass and one parallel region, writing side by side into one output — the fusion
/// happens over the weights' own memory, so loading, int8 conversion and training see the checkpoint's tensors.
/// float32 and bfloat16 (weights and activations of the same dtype), accumulation in float32, one rounding per output
/// as libtorch does; for bfloat16 the SwiGLU rounds where the TorchSharp path rounds (gate, silu, up, product).
/// Legend: M activation rows, K inputs, N outputs of a segment.
/// </summary>
public static unsafe class SmallMatMul
{
    /// <summary>Largest M the kernel takes in float32. Measured (`bench … gemv`, docs/BENCHMARKS.md) on libtorch's
    /// team: ahead of every libtorch path (MKL SGEMM, packed SGEMM) at 1–32 rows of every bench-small weight.</summary>
    public static int MaxRows { get; set; } = 32;

    /// <summary>Largest M in bfloat16: from 8 rows oneDNN's bfloat16 dot-product instructions (which .NET 10 does not
    /// expose) win on compute over the kernel's widen-then-FMA.</summary>
    public static int MaxRowsBFloat16 { get; set; } = 4;

    /// <summary>Off: every product goes to libtorch (set with MOECLUSTER_SMALL_MATMUL=0 for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_SMALL_MATMUL") != "0";

    [ThreadStatic] static bool offOnThisThread;

    /// <summary>Sends this thread's products to libtorch until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread()
    {
        bool was = offOnThisThread;
        offOnThisThread = true;
        return new ThreadSwitch(() => offOnThisThread = was);
    }

    /// <summary>Output rows below which one thread does the whole call (waking a second costs more than it saves).</summary>
    const int RowsPerThread = 64;

    /// <summary>Most rows <see cref="Run"/> takes at all (its per-thread tile results live on the stack).</summary>
    public const int RowLimit = 64;

    static int? threads =
        int.TryParse(Environment.GetEnvironmentVariable("MOECLUSTER_SMALL_MATMUL_THREADS"), out var t) && t > 0 ? t : null;

    /// <summary>Threads one call splits its output rows over: libtorch's intra-op thread count, on libtorch's own
    /// OpenMP team (<see cref="OmpTeam"/>), so the kernel and libtorch's ops never compete for the cores; one where that
    /// team is not available. MOECLUSTER_SMALL_MATMUL_THREADS (or setting this) fixes the count.</summary>
    public static int Threads
    {
        get => threads ?? (OmpTeam.Available ? get_num_threads() : 1);
        set => threads = value;
    }

    /// <summary>Whether <see cref="Run"/> takes x [M, K] against these weights: CPU, float32 or bfloat16 throughout,
    /// M ≤ <see cref="MaxRows"/>, K a multiple of 32, contiguous weights, and no gradient wanted.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        Enabled && !offOnThisThread && Vector512.IsHardwareAccelerated
        && Supports(x, weight, x.dtype == ScalarType.BFloat16 ? MaxRowsBFloat16 : MaxRows);

    /// <summary>The shape and dtype conditions alone (what the scalar path needs too).</summary>
    public static bool Supports(Tensor x, Tensor weight, int maxRows) =>
        x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU && x.dim() == 2 && weight.dim() == 2
        && (x.dtype == ScalarType.Float32 || x.dtype == ScalarType.BFloat16) && weight.dtype == x.dtype
        && x.shape[0] >= 1 && x.shape[0] <= maxRows && x.shape[1] == weight.shape[1] && x.shape[1] % 32 == 0
        && weight.is_contiguous() && !(is_grad_enabled() && (weight.requires_grad || x.requires_grad));

    /// <summary>x [M, K] → [M, Σ segment rows] in x's dtype, the segments' outputs side by side in order.</summary>
    public static Tensor Run(Tensor x, IReadOnlyList<MatMulSegment> segments, KernelPath path = KernelPath.Vector512)
    {
        bool bf16 = x.dtype == ScalarType.BFloat16;
        int M = (int)x.shape[0], K = (int)x.shape[1];
        if (M > RowLimit) throw new ArgumentException($"SmallMatMul takes at most {RowLimit} rows, got {M}");
        foreach (var s in segments)
        {
            if (!Supports(x, s.Weight, int.MaxValue) || (s.Up is { } u && (!Supports(x, u, int.MaxValue) || u.shape[0] != s.Weight.shape[0])))
                throw new ArgumentException($"SmallMatMul cannot take x [{string.Join(", ", x.shape)}] {x.dtype} against weight [{string.Join(", ", s.Weight.shape)}] {s.Weight.dtype}");
        }
        int N = segments.Sum(s => s.Rows);
        var output = empty([M, N], x.dtype, CPU);
        using var xc = x.contiguous();
        float* packed = (float*)NativeMemory.AlignedAlloc((nuint)(M * K * sizeof(float)), 64);
        var biases = new List<nint>();
        try
        {
            Pack(Data(xc), bf16, M, K, packed, path == KernelPath.Vector512);
            var jobs = new Job[segments.Count];
            int column = 0;
            for (int i = 0; i < segments.Count; i++)
            {
                var s = segments[i];
                float* bias = null;
                if (s.Bias is { } b)
                {
                    bias = (float*)NativeMemory.Alloc((nuint)(s.Rows * sizeof(float)));
                    biases.Add((nint)bias);
                    using var bf = b.to(ScalarType.Float32).contiguous();
                    Buffer.MemoryCopy(Data(bf), bias, s.Rows * sizeof(float), s.Rows * sizeof(float));
                }
                jobs[i] = new Job((byte*)Data(s.Weight), s.Up is { } u ? (byte*)Data(u) : null, bias, s.Rows, column);
                column += s.Rows;
            }
            var call = new Call(packed, M, K, bf16, jobs, (byte*)Data(output), N, path);
            OmpTeam.Run(call, Math.Min(Threads, Math.Max(1, N / RowsPerThread)));
            GC.KeepAlive(segments);
        }
        finally
        {
            NativeMemory.AlignedFree(packed);
            foreach (var b in biases) NativeMemory.Free((void*)b);
        }
        return output;
    }

    /// <summary>x [M, K] as float32 in the chunked layout of <see cref="IWeightRows"/> (plain order for the scalar loop).</summary>
    static void Pack(void* x, bool bf16, int M, int K, float* packed, bool chunked)
    {
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++)
            {
                float v = bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)x)[m * K + k] << 16) : ((float*)x)[m * K + k];
                int chunk = k & ~31, slot = !chunked ? k & 31 : bf16 ? BFloat16Rows.Slot(k & 31) : Float32Rows.Slot(k & 31);
                packed[m * K + chunk + slot] = v;
            }
    }

    static void* Data(Tensor t) => TensorMemory.Data(t);

    readonly struct Job(byte* weight, byte* up, float* bias, int rows, int column)
    {
        public readonly byte* Weight = weight, Up = up;
        public readonly float* Bias = bias;
        public readonly int Rows = rows, Column = column;
    }

    /// <summary>One call's operands; <see cref="Blocks"/> computes 4-row output blocks [from, to) over all segments.</summary>
    sealed class Call(float* x, int M, int K, bool bf16, Job[] jobs, byte* output, int N, KernelPath path) : IParallelWork
    {
        readonly int blocks = jobs.Sum(j => (j.Rows + 3) / 4);

        /// <summary>Thread t of n takes the t-th n-th of the 4-row blocks.</summary>
        public void Run(int thread, int threads) =>
            Blocks((int)((long)blocks * thread / threads), (int)((long)blocks * (thread + 1) / threads));

        public void Blocks(int from, int to)
        {
            float* gate = stackalloc float[M * 4];
            float* up = stackalloc float[M * 4];
            int first = 0;
            foreach (var job in jobs)
            {
                int count = (job.Rows + 3) / 4;
                for (int b = Math.Max(from, first); b < Math.Min(to, first + count); b++)
                {
                    int row = (b - first) * 4, rows = Math.Min(4, job.Rows - row);
                    Dot(job.Weight, row, rows, gate);
                    if (job.Up is not null) Dot(job.Up, row, rows, up);
                    Store(job, row, rows, gate, job.Up is not null ? up : null);
                }
                first += count;
            }
        }

        /// <summary>r[m·4 + i] = x[m] · W[row + i] for the block's rows; a short last block repeats its last row.</summary>
        void Dot(byte* w, int row, int rows, float* r)
        {
            int es = bf16 ? 2 : 4;
            long stride = (long)K * es;
            byte* Row(int i) => w + (row + Math.Min(i, rows - 1)) * stride;
            if (path == KernelPath.Scalar)
            {
                float* t = stackalloc float[64];
                for (int i = 0; i < rows; i++)
                    for (int m0 = 0; m0 < M; m0 += 16)
                    {
                        int mc = Math.Min(16, M - m0);
                        SmallMatMulTiles.Scalar(x + m0 * K, mc, Row(i), bf16, K, t);
                        for (int m = 0; m < mc; m++) r[(m0 + m) * 4 + i] = t[m * 4];
                    }
                return;
            }
            for (int m = 0; m < M;)
            {
                int left = M - m;
                float* xm = x + m * K, rm = r + m * 4;
                if (left >= 4) { Tile(4, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 4; }
                else if (left >= 2) { Tile(2, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 2; }
                else { Tile(1, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 1; }
            }
        }

        void Tile(int mr, float* xm, byte* w0, byte* w1, byte* w2, byte* w3, float* r)
        {
            if (bf16)
            {
                if (mr == 4) SmallMatMulTiles.Rows4x4<BFloat16Rows>(xm, w0, w1, w2, w3, K, r);
                else if (mr == 2) SmallMatMulTiles.Rows4x2<BFloat16Rows>(xm, w0, w1, w2, w3, K, r);
                else SmallMatMulTiles.Rows4x1<BFloat16Rows>(xm, w0, w1, w2, w3, K, r);
            }
            else
            {
                if (mr == 4) SmallMatMulTiles.Rows4x4<Float32Rows>(xm, w0, w1, w2, w3, K, r);
                else if (mr == 2) SmallMatMulTiles.Rows4x2<Float32Rows>(xm, w0, w1, w2, w3, K, r);
                else SmallMatMulTiles.Rows4x1<Float32Rows>(xm, w0, w1, w2, w3, K, r);
            }
        }

        /// <summary>Bias, SwiGLU and the one rounding to the output dtype.</summary>
        void Store(Job job, int row, int rows, float* g, float* u)
        {
            for (int m = 0; m < M; m++)
                for (int i = 0; i < rows; i++)
                {
                    float v = g[m * 4 + i];
                    if (job.Bias is not null) v += job.Bias[row + i];
                    if (u is not null) v = SwiGlu(v, u[m * 4 + i]);
                    long at = (long)m * N + job.Column + row + i;
                    if (bf16) ((ushort*)output)[at] = BFloat16Bits.Round(v);
                    else ((float*)output)[at] = v;
                }
        }

        /// <summary>silu(g) · u, rounded at each step the TorchSharp path rounds in bfloat16.</summary>
        float SwiGlu(float g, float u)
        {
            if (!bf16) return g / (1f + MathF.Exp(-g)) * u;
            g = BFloat16Bits.Widen(BFloat16Bits.Round(g));
            float silu = BFloat16Bits.Widen(BFloat16Bits.Round(g / (1f + MathF.Exp(-g))));
            return silu * BFloat16Bits.Widen(BFloat16Bits.Round(u));
        }
    }
}

/// <summary>bfloat16 as the upper 16 bits of a float32.</summary>
static class BFloat16Bits
{
    /// <summary>Round to nearest even, as libtorch's float → bfloat16 conversion does (NaN stays a quiet NaN).</summary>
    public static ushort Round(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        if (float.IsNaN(v)) return 0x7FC0;
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    public static float Widen(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);
}
