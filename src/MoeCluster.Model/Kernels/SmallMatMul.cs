using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>One weight matrix [N, K] of a <see cref="SmallMatMul"/> call, with an optional bias [N]; with
/// <see cref="Up"/> set the segment is a SwiGLU: silu(x Wᵀ) · (x Upᵀ), both read in the same pass. int8 weights carry
/// their per-output-channel float32 scales ([N]; <see cref="UpScales"/> for an int8 up), applied to each dot product.</summary>
public readonly record struct MatMulSegment(Tensor Weight, Tensor? Bias = null, Tensor? Up = null, Tensor? Scales = null, Tensor? UpScales = null)
{
    public int Rows => (int)Weight.size(0);
}

/// <summary>How a call's weights are stored.</summary>
enum WeightKind { Float32, BFloat16, Int8 }

/// <summary>Which inner loops <see cref="SmallMatMul"/> runs: the AVX-512 tiles, the scalar loop (used where
/// <see cref="Vector512"/> is not accelerated, and by the tests to cross-check the tiles), or for bfloat16 × bfloat16
/// calls the native AVX512-BF16 tile (<see cref="NativeBFloat16Dot"/>; other dtypes take the AVX-512 tiles).</summary>
public enum KernelPath { Vector512, Scalar, BFloat16Dot }

/// <summary>
/// y = x Wᵀ for few activation rows (decode, per-expert groups), streaming each weight once from memory. At batch 1–16
/// libtorch sends these to MKL SGEMM / oneDNN with n ≤ 16, which read weights at a quarter of the bandwidth on the
/// benchmark machine (docs/BENCHMARKS.md); this kernel reads each weight row once per call, multiplies it by every
/// activation row from registers, and splits the output rows over the cores. Several segments (q|k|v, or an expert's
/// gate|up as a SwiGLU) run as one pass and one parallel region, writing side by side into one output — the fusion
/// happens over the weights' own memory, so loading, int8 conversion and training see the checkpoint's tensors.
/// float32 and bfloat16 (weights and activations of the same dtype), accumulation in float32, one rounding per output
/// as libtorch does; for bfloat16 the SwiGLU rounds where the TorchSharp path rounds (gate, silu, up, product).
/// int8 weights (symmetric, per output channel) are widened in registers and their scale applied to each dot product,
/// so an int8 expert streams a quarter of a float32 one's bytes instead of dequantising its weights per call.
/// Legend: M activation rows, K inputs, N outputs of a segment.
/// </summary>
public static unsafe class SmallMatMul
{
    /// <summary>Largest M the kernel takes in float32. Measured (`bench … gemv`, docs/BENCHMARKS.md) on libtorch's
    /// team: ahead of every libtorch path (MKL SGEMM, packed SGEMM) at 1–32 rows of every bench-small weight.</summary>
    public static int MaxRows { get; set; } = 32;

    /// <summary>Largest M in bfloat16 on the managed tile (int8 weights take <see cref="MaxRows"/>: their alternative
    /// dequantises per call): from 8 rows oneDNN's bfloat16 dot-product instructions (which .NET 10 does not expose) win
    /// on compute over the managed widen-then-FMA. Where the native tile runs (<see cref="NativeBFloat16Dot.Usable"/>),
    /// bfloat16 takes <see cref="MaxRowsNativeBFloat16"/> instead.</summary>
    public static int MaxRowsBFloat16 { get; set; } = 4;

    /// <summary>Largest M in bfloat16 on the native AVX512-BF16 tile (<see cref="NativeBFloat16Dot"/>). Set by the
    /// whole decode step, not by one product: `bench … native-ab` (bfloat16 batch 32, tile on and off alternating in one
    /// process) measured the step 1.29× faster with 32 rows, 1.20× with 24, 1.05× with 16 and 0.94–1.04× with 8, though
    /// `bench … gemv` has oneDNN ahead from 16–32 rows on one hot weight repeated (docs/BENCHMARKS.md, issue 12,
    /// "Fourth pass"). MOECLUSTER_NATIVE_BF16_ROWS=N (1–32) at start sets it, for A/B runs.</summary>
    public static int MaxRowsNativeBFloat16 { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOECLUSTER_NATIVE_BF16_ROWS"), out var r) && r is >= 1 and <= 32 ? r : 32;

    /// <summary>Off: every product goes to libtorch (set with MOECLUSTER_SMALL_MATMUL=0 for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_SMALL_MATMUL") != "0";

    static readonly ThreadSwitch onThisThread = new();

    /// <summary>One activation row (single-sequence decode) reads each block's weight rows one after another with
    /// software prefetch (<see cref="SmallMatMulTiles.Row1{TW}"/>) instead of through the 4x1 tile: the same results bit
    /// for bit, and a batch-1 step of bench-small 6.1 → 4.3 ms (float32), 5.1 → 2.9 ms (bfloat16) (`bench … decode-calls`). Off
    /// (MOECLUSTER_ROW_STREAM=0 at start, or setting this) for A/B runs.</summary>
    public static bool Streaming { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_ROW_STREAM") != "0";

    static readonly ThreadSwitch streamingOnThisThread = new();

    /// <summary>Sends this thread's one-row calls through the 4x1 tile until disposed (the cross-check test).</summary>
    public static IDisposable StreamingOffOnThisThread() => streamingOnThisThread.Off();

    /// <summary>Calls of at least this many rows prefetch each next 4-row weight block while the current one computes
    /// (int.MaxValue: never). From 2 rows a block computes from cache long enough to hide the next block's memory
    /// latency, which the hardware prefetcher alone does not: a cold bench-small expert at 32 rows ran at 166 against
    /// 219 GFLOP/s hot, and at batch 32 (about 8 rows per expert) `model-core --quick` measured a decode step 43–49 →
    /// 34 ms in float32 and 30–34 → 23.5 ms in bfloat16 with prefetch from 2 rows against from 16 (two alternating
    /// rounds, load ≈ 1). One row streams its own rows instead (<see cref="Streaming"/>). MOECLUSTER_WEIGHT_PREFETCH=0
    /// at start turns it off; =N sets the row count, for A/B runs. Arithmetic is unchanged either way.</summary>
    public static int PrefetchFromRows { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_WEIGHT_PREFETCH") switch
    {
        "0" => int.MaxValue,
        string rows when int.TryParse(rows, out var n) && n > 1 => n,
        _ => 2,
    };

    /// <summary>float32 SwiGLU segments apply silu·up 16 outputs at a time with <see cref="Vector512.Exp(Vector512{float})"/>
    /// (within 2 ulp of MathF.Exp) instead of one MathF.Exp per output, which cost ~12 % of a gate|up call at 32 rows.
    /// Off (MOECLUSTER_VECTOR_SWIGLU=0 at start) for A/B runs.</summary>
    public static bool VectorSwiGlu { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_VECTOR_SWIGLU") != "0";

    /// <summary>Sends this thread's products to libtorch until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread() => onThisThread.Off();

    /// <summary>Whether this thread's products are sent to libtorch (<see cref="ChunkedMatMul"/> follows the switch).</summary>
    internal static bool IsOffOnThisThread => onThisThread.IsOff;

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

    /// <summary>Whether <see cref="Run"/> takes x [M, K] against these weights: CPU, float32 or bfloat16 activations
    /// against weights of the same dtype or int8, M ≤ <see cref="MaxRows"/>, K a multiple of 32, contiguous weights, and no gradient wanted.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        Enabled && !onThisThread.IsOff && Vector512.IsHardwareAccelerated
        && Supports(x, weight, x.dtype == ScalarType.BFloat16 && weight.dtype == ScalarType.BFloat16
            ? (NativeBFloat16Dot.Usable ? MaxRowsNativeBFloat16 : MaxRowsBFloat16) : MaxRows);

    /// <summary>The shape and dtype conditions alone (what the scalar path needs too).</summary>
    public static bool Supports(Tensor x, Tensor weight, int maxRows) =>
        x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU && x.dim() == 2 && weight.dim() == 2
        && (x.dtype == ScalarType.Float32 || x.dtype == ScalarType.BFloat16) && (weight.dtype == x.dtype || weight.dtype == ScalarType.Int8)
        && x.size(0) >= 1 && x.size(0) <= maxRows && x.size(1) == weight.size(1) && x.size(1) % 32 == 0
        && weight.is_contiguous() && !(is_grad_enabled() && (weight.requires_grad || x.requires_grad));

    /// <summary>x [M, K] → [M, Σ segment rows] in x's dtype, the segments' outputs side by side in order. Without a
    /// <paramref name="path"/>, bfloat16 × bfloat16 calls of 2 rows or more take the native tile where it is usable
    /// (one row streams its weight rows through the managed loop, at the bandwidth already), everything else the
    /// AVX-512 tiles.</summary>
    public static Tensor Run(Tensor x, IReadOnlyList<MatMulSegment> segments, KernelPath? path = null)
    {
        bool bf16 = x.dtype == ScalarType.BFloat16;
        int M = (int)x.size(0), K = (int)x.size(1);
        if (M > RowLimit) throw new ArgumentException($"SmallMatMul takes at most {RowLimit} rows, got {M}");
        foreach (var s in segments)
        {
            if (!Supports(x, s.Weight, int.MaxValue) || (s.Up is { } u && (!Supports(x, u, int.MaxValue) || u.size(0) != s.Weight.size(0) || u.dtype != s.Weight.dtype)))
                throw new ArgumentException($"SmallMatMul cannot take x [{string.Join(", ", x.shape)}] {x.dtype} against weight [{string.Join(", ", s.Weight.shape)}] {s.Weight.dtype}");
            if ((s.Weight.dtype == ScalarType.Int8) != (s.Scales is not null) || (s.Up is not null && (s.Weight.dtype == ScalarType.Int8) != (s.UpScales is not null)))
                throw new ArgumentException("SmallMatMul: int8 weights need their per-channel scales, and only int8 weights take scales");
            if (s.Weight.dtype != segments[0].Weight.dtype)
                throw new ArgumentException($"SmallMatMul: the segments of one call share a weight dtype, got {segments[0].Weight.dtype} and {s.Weight.dtype}");
        }
        var kind = segments[0].Weight.dtype switch { ScalarType.Int8 => WeightKind.Int8, ScalarType.BFloat16 => WeightKind.BFloat16, _ => WeightKind.Float32 };
        bool pairs = bf16 && kind == WeightKind.BFloat16;
        var loops = path switch
        {
            null => pairs && M >= 2 && NativeBFloat16Dot.Usable ? KernelPath.BFloat16Dot : KernelPath.Vector512,
            KernelPath.BFloat16Dot when !pairs => KernelPath.Vector512,
            { } p => p,
        };
        int N = segments.Sum(s => s.Rows);
        var output = empty([M, N], x.dtype, CPU);
        using var xc = x.contiguous();
        // The native tile reads the bfloat16 activations as they are; the managed loops take float32 in their layout.
        bool native = loops == KernelPath.BFloat16Dot;
        if (native && !NativeBFloat16Dot.Available)
            throw new InvalidOperationException($"the native bfloat16 tile is not available: {NativeBFloat16Dot.Unavailable}");
        float* packed = native ? null : (float*)NativeMemory.AlignedAlloc((nuint)(M * K * sizeof(float)), 64);
        var floats = new List<nint>();
        try
        {
            if (!native) Pack(Data(xc), bf16, M, K, packed, loops == KernelPath.Vector512 ? kind : WeightKind.Float32);
            var jobs = new Job[segments.Count];
            int column = 0;
            for (int i = 0; i < segments.Count; i++)
            {
                var s = segments[i];
                jobs[i] = new Job((byte*)Data(s.Weight), s.Up is { } u ? (byte*)Data(u) : null,
                    Floats(s.Bias, s.Rows, floats), Floats(s.Scales, s.Rows, floats), Floats(s.UpScales, s.Rows, floats), s.Rows, column);
                column += s.Rows;
            }
            var call = new Call(packed, native ? (ushort*)Data(xc) : null, M, K, bf16, kind, jobs, (byte*)Data(output), N, loops,
                Streaming && !streamingOnThisThread.IsOff);
            OmpTeam.Run(call, Math.Min(Threads, Math.Max(1, N / RowsPerThread)));
            GC.KeepAlive(segments);
        }
        finally
        {
            if (packed is not null) NativeMemory.AlignedFree(packed);
            foreach (var f in floats) NativeMemory.Free((void*)f);
        }
        return output;
    }

    /// <summary>A float32 copy of a per-row vector (bias, scales) that the caller frees, or null.</summary>
    static float* Floats(Tensor? t, int rows, List<nint> owned)
    {
        if (t is null) return null;
        if (t.NumberOfElements != rows) throw new ArgumentException($"SmallMatMul: a per-row vector has {t.NumberOfElements} entries for {rows} rows");
        var copy = (float*)NativeMemory.Alloc((nuint)(rows * sizeof(float)));
        owned.Add((nint)copy);
        using var f = t.to(ScalarType.Float32).contiguous();
        Buffer.MemoryCopy(Data(f), copy, rows * sizeof(float), rows * sizeof(float));
        return copy;
    }

    /// <summary>x [M, K] as float32 in the chunked layout of <see cref="IWeightRows"/> for the weights' kind (float32's
    /// layout, plain order, for the scalar loop).</summary>
    static void Pack(void* x, bool bf16, int M, int K, float* packed, WeightKind layout)
    {
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++)
            {
                float v = bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)x)[m * K + k] << 16) : ((float*)x)[m * K + k];
                int chunk = k & ~31, slot = layout == WeightKind.BFloat16 ? BFloat16Rows.Slot(k & 31) : k & 31;
                packed[m * K + chunk + slot] = v;
            }
    }

    static void* Data(Tensor t) => TensorMemory.Data(t);

    readonly struct Job(byte* weight, byte* up, float* bias, float* scales, float* upScales, int rows, int column)
    {
        public readonly byte* Weight = weight, Up = up;
        public readonly float* Bias = bias, Scales = scales, UpScales = upScales;
        public readonly int Rows = rows, Column = column;
    }

    /// <summary>One call's operands; <see cref="Blocks"/> computes 4-row output blocks [from, to) over all segments.</summary>
    sealed class Call(float* x, ushort* raw, int M, int K, bool bf16, WeightKind kind, Job[] jobs, byte* output, int N, KernelPath path, bool streaming) : IParallelWork
    {
        readonly int blocks = jobs.Sum(j => (j.Rows + 3) / 4);
        readonly bool prefetch = M >= PrefetchFromRows && Sse.IsSupported;
        readonly bool vectorSwiGlu = VectorSwiGlu;

        /// <summary>Thread t of n takes the t-th n-th of the 4-row blocks.</summary>
        public void Run(int thread, int threads) =>
            Blocks((int)((long)blocks * thread / threads), (int)((long)blocks * (thread + 1) / threads));

        public void Blocks(int from, int to)
        {
            // Padded to whole vectors for the vectorised SwiGLU in Store (the padding is computed and never stored).
            float* gate = stackalloc float[M * 4 + 16];
            float* up = stackalloc float[M * 4 + 16];
            int first = 0;
            foreach (var job in jobs)
            {
                int count = (job.Rows + 3) / 4;
                for (int b = Math.Max(from, first); b < Math.Min(to, first + count); b++)
                {
                    int row = (b - first) * 4, rows = Math.Min(4, job.Rows - row);
                    Dot(job.Weight, row, rows, job.Rows, gate);
                    if (job.Up is not null) Dot(job.Up, row, rows, job.Rows, up);
                    Store(job, row, rows, gate, job.Up is not null ? up : null);
                }
                first += count;
            }
        }

        /// <summary>r[m·4 + i] = x[m] · W[row + i] for the block's rows; a short last block repeats its last row.</summary>
        void Dot(byte* w, int row, int rows, int jobRows, float* r)
        {
            int es = kind switch { WeightKind.Int8 => 1, WeightKind.BFloat16 => 2, _ => 4 };
            long stride = (long)K * es;
            byte* Row(int i) => w + (row + Math.Min(i, rows - 1)) * stride;
            if (path == KernelPath.Scalar)
            {
                float* t = stackalloc float[64];
                for (int i = 0; i < rows; i++)
                    for (int m0 = 0; m0 < M; m0 += 16)
                    {
                        int mc = Math.Min(16, M - m0);
                        SmallMatMulTiles.Scalar(x + m0 * K, mc, Row(i), kind, K, t);
                        for (int m = 0; m < mc; m++) r[(m0 + m) * 4 + i] = t[m * 4];
                    }
                return;
            }
            // With prefetch, the next block's weight rows are requested a share before each row tile, so they arrive
            // while this block computes from cache (prefill-sized M: a weight row is used M times once loaded).
            int nextRows = prefetch ? Math.Max(0, Math.Min(4, jobRows - row - 4)) : 0;
            long nextBytes = nextRows * stride;
            byte* next = w + (row + 4) * stride;
            if (path == KernelPath.BFloat16Dot)
            {
                NativeBFloat16Dot.Dot4(raw, M, K, Row(0), Row(1), Row(2), Row(3), r, next, nextBytes);
                return;
            }
            if (M == 1 && streaming)
            {
                for (int i = 0; i < 4; i++)
                    r[i] = kind switch
                    {
                        WeightKind.Int8 => SmallMatMulTiles.Row1<Int8Rows>(x, Row(i), K),
                        WeightKind.BFloat16 => SmallMatMulTiles.Row1<BFloat16Rows>(x, Row(i), K),
                        _ => SmallMatMulTiles.Row1<Float32Rows>(x, Row(i), K),
                    };
                return;
            }

            long perTile = nextBytes / ((M + 3) / 4) + 64, fetched = 0;
            for (int m = 0; m < M;)
            {
                int left = M - m;
                float* xm = x + m * K, rm = r + m * 4;
                for (long end = Math.Min(nextBytes, fetched + perTile); fetched < end; fetched += 64) Sse.Prefetch0(next + fetched);
                if (left >= 4) { Tile(4, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 4; }
                else if (left >= 2) { Tile(2, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 2; }
                else { Tile(1, xm, Row(0), Row(1), Row(2), Row(3), rm); m += 1; }
            }
        }

        void Tile(int mr, float* xm, byte* w0, byte* w1, byte* w2, byte* w3, float* r)
        {
            if (kind == WeightKind.Int8)
            {
                if (mr == 4) SmallMatMulTiles.Rows4x4<Int8Rows>(xm, w0, w1, w2, w3, K, r);
                else if (mr == 2) SmallMatMulTiles.Rows4x2<Int8Rows>(xm, w0, w1, w2, w3, K, r);
                else SmallMatMulTiles.Rows4x1<Int8Rows>(xm, w0, w1, w2, w3, K, r);
            }
            else if (kind == WeightKind.BFloat16)
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

        /// <summary>Scales, bias, SwiGLU and the one rounding to the output dtype.</summary>
        void Store(Job job, int row, int rows, float* g, float* u)
        {
            if (u is not null && vectorSwiGlu && !bf16 && path == KernelPath.Vector512 && job.Scales is null && job.UpScales is null && job.Bias is null)
            {
                // float32 SwiGLU 16 outputs at a time (see VectorSwiGlu); every element goes
                // through the same vector exp whatever M is, so a row's result does not depend on the others in the call.
                for (int j = 0; j < M * 4; j += 16)
                {
                    var gv = Vector512.Load(g + j);
                    (gv / (Vector512<float>.One + Vector512.Exp(-gv)) * Vector512.Load(u + j)).Store(g + j);
                }
                u = null;
            }
            for (int m = 0; m < M; m++)
                for (int i = 0; i < rows; i++)
                {
                    float v = g[m * 4 + i];
                    if (job.Scales is not null) v *= job.Scales[row + i];
                    if (job.Bias is not null) v += job.Bias[row + i];
                    if (u is not null) v = SwiGlu(v, job.UpScales is not null ? u[m * 4 + i] * job.UpScales[row + i] : u[m * 4 + i]);
                    long at = (long)m * N + job.Column + row + i;
                    Elements.Write(output, at, v, bf16);
                }
        }

        /// <summary>silu(g) · u, rounded at each step the TorchSharp path rounds in bfloat16.</summary>
        float SwiGlu(float g, float u)
        {
            if (!bf16) return g / (1f + MathF.Exp(-g)) * u;
            g = BFloat16Bits.Rounded(g);
            float silu = BFloat16Bits.Rounded(g / (1f + MathF.Exp(-g)));
            return silu * BFloat16Bits.Rounded(u);
        }
    }
}
