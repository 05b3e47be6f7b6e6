using System.Runtime.InteropServices;
using MoeCluster.Bench.Measurement;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>One product y = x Wᵀ of bench-small's shapes, timed by one method: min and median µs per call and the
/// weight bytes per second they stream.</summary>
public sealed record GemvResult(string Shape, ScalarType DType, int Rows, string Method, double MinUs, double MedianUs, long WeightBytes)
{
    public double GBs => WeightBytes / (MinUs * 1e3);
}

/// <summary>
/// Which small-batch product path streams the weights fastest (issue 12, point 2): <c>linear(x, W)</c> on the
/// checkpoint's [N, K] weight, <c>x.matmul(Wᵀ)</c> on a contiguous [K, N] copy, <c>mv</c> at one row, MKL's packed SGEMM
/// (<c>cblas_sgemm_pack</c>/<c>_compute</c> exported by libtorch, float32 only) and the project's <see cref="SmallMatMul"/>
/// (its managed AVX-512 tiles; in bfloat16 also its native AVX512-BF16 tile, <see cref="NativeBFloat16Dot"/>),
/// also on the weight's int8 form (a cold expert's; GB/s of that column count the int8 bytes and scales).
/// Shapes: an expert's w1 [1408, 512] and w2 [512, 1408], and the LM head [32000, 512].
/// </summary>
public static class GemvBenchmark
{
    static readonly (string Name, int N, int K)[] Shapes = [("expert w1 1408×512", 1408, 512), ("expert w2 512×1408", 512, 1408), ("LM head 32000×512", 32000, 512)];
    static readonly int[] RowCounts = [1, 4, 8, 12, 16, 32];

    public static IReadOnlyList<GemvResult> Run(bool quick, Action<string> log)
    {
        var results = new List<GemvResult>();
        using var _ = no_grad();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            foreach (var (name, N, K) in Shapes)
            {
                using var w = (randn([N, K]) * 0.02).to(dtype);
                using var wt = w.t().contiguous();
                using var q = Int8Weights.Quantise(w);
                long bytes = w.NumberOfElements * w.ElementSize;
                foreach (int m in RowCounts)
                {
                    using var x = randn([m, K]).to(dtype);
                    using var packed = dtype == ScalarType.Float32 ? MklPacked.Pack(w, m) : null;
                    void Add(string method, Action call, long? streamed = null)
                    {
                        var r = Time(name, dtype, m, method, streamed ?? bytes, call, quick);
                        results.Add(r);
                        log($"  {name,-20} {dtype,-8} M={m,-3} {method,-22} min {r.MinUs,9:0.0} µs  median {r.MedianUs,9:0.0} µs  {r.GBs,6:0.0} GB/s");
                    }
                    Add("linear(x, W)", () => nn.functional.linear(x, w).Dispose());
                    Add("x.matmul(Wᵀ copy)", () => x.matmul(wt).Dispose());
                    if (m == 1) Add("mv(W, x)", () => mv(w, x[0]).Dispose());
                    if (packed is not null) Add("MKL packed SGEMM", () => packed.Compute(x).Dispose());
                    Add("SmallMatMul", () => SmallMatMul.Run(x, [new MatMulSegment(w)], KernelPath.Vector512).Dispose());
                    if (dtype == ScalarType.BFloat16 && NativeBFloat16Dot.Available)
                        Add("SmallMatMul, native bf16 dot", () => SmallMatMul.Run(x, [new MatMulSegment(w)], KernelPath.BFloat16Dot).Dispose());
                    Add("SmallMatMul, int8 weights", () => SmallMatMul.Run(x, [new MatMulSegment(q.Values, Scales: q.Scales)]).Dispose(), q.Bytes);
                }
            }
        return results;
    }

    /// <summary>Calls are repeated in batches of about 20 ms; each batch gives one per-call time.</summary>
    static GemvResult Time(string shape, ScalarType dtype, int rows, string method, long bytes, Action call, bool quick)
    {
        call();
        var probe = Timings.Measure(1, 3, _ => call());
        int reps = Math.Max(1, (int)(0.02 / Math.Max(probe.Median, 1e-7)));
        var t = Timings.Measure(0, quick ? 3 : 7, _ => { for (int i = 0; i < reps; i++) call(); });
        return new GemvResult(shape, dtype, rows, method, t.Best / reps * 1e6, t.Median / reps * 1e6, bytes);
    }

    public static string Markdown(IReadOnlyList<GemvResult> results)
    {
        var sb = new System.Text.StringBuilder();
        var methods = results.Select(r => r.Method).Distinct().ToList();
        sb.AppendLine("| Weight | dtype | rows M | " + string.Join(" | ", methods) + " |");
        sb.AppendLine("|---|---|---:|" + string.Concat(methods.Select(_ => "---:|")));
        foreach (var g in results.GroupBy(r => (r.Shape, r.DType, r.Rows)))
        {
            var cells = methods.Select(m => g.FirstOrDefault(r => r.Method == m) is { } r ? $"{r.MinUs:0} / {r.MedianUs:0} µs ({r.GBs:0.0} GB/s)" : "–");
            sb.AppendLine($"| {g.Key.Shape} | {Report.ModelCoreReport.DTypeName(g.Key.DType)} | {g.Key.Rows} | {string.Join(" | ", cells)} |");
        }
        return sb.ToString();
    }

    /// <summary>MKL's packed SGEMM as libtorch exports it (LP64 CBLAS): the weight is packed once as the B operand, then
    /// every call multiplies x [M, K] by it.</summary>
    sealed unsafe class MklPacked : IDisposable
    {
        const int RowMajor = 101, NoTrans = 111, Trans = 112, Packed = 151, BMatrix = 162;
        readonly void* buffer;
        readonly int n, k;

        MklPacked(void* buffer, int n, int k) { this.buffer = buffer; this.n = n; this.k = k; }

        public static MklPacked Pack(Tensor w, int m)
        {
            int n = (int)w.shape[0], k = (int)w.shape[1];
            var size = cblas_sgemm_pack_get_size(BMatrix, m, n, k);
            var buffer = NativeMemory.AlignedAlloc(size, 64);
            // B = Wᵀ (K×N): the row-major [N, K] weight read transposed.
            cblas_sgemm_pack(RowMajor, BMatrix, Trans, m, n, k, 1f, (float*)THSTensor_data(w.Handle), k, buffer);
            return new MklPacked(buffer, n, k);
        }

        public Tensor Compute(Tensor x)
        {
            int m = (int)x.shape[0];
            var y = empty([m, n], ScalarType.Float32);
            cblas_sgemm_compute(RowMajor, NoTrans, Packed, m, n, k, (float*)THSTensor_data(x.Handle), k, buffer, n, 0f, (float*)THSTensor_data(y.Handle), n);
            return y;
        }

        public void Dispose() => NativeMemory.AlignedFree(buffer);

        [DllImport("libtorch_cpu")] static extern nuint cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
        [DllImport("libtorch_cpu")] static extern void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, float* src, int ld, void* dest);
        [DllImport("libtorch_cpu")] static extern void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, float* a, int lda, void* b, int ldb, float beta, float* c, int ldc);
        [DllImport("LibTorchSharp")] static extern nint THSTensor_data(nint handle);
    }
}
