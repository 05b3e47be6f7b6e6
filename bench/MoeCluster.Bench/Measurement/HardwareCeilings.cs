using static TorchSharp.torch;

namespace MoeCluster.Bench.Measurement;

/// <summary>What this machine can do at best through TorchSharp, measured in the same run as the model so the
/// ratios compare like with like: a large square GEMM per dtype, and streaming memory bandwidth.</summary>
public sealed record HardwareCeilings(double MatmulGflopsFloat32, double MatmulGflopsBFloat16, double CopyGBs, double SumGBs, int MatmulSize, long StreamBytes)
{
    /// <summary>The better of the two streaming figures: the most bytes per second a kernel here has moved.</summary>
    public double BandwidthGBs => Math.Max(CopyGBs, SumGBs);

    public double MatmulGflops(ScalarType dtype) => dtype == ScalarType.BFloat16 ? MatmulGflopsBFloat16 : MatmulGflopsFloat32;

    /// <summary>The better of two measurements of each ceiling: on a shared machine a ceiling measured while another
    /// process ran is too low, and a low ceiling would flatter every ratio.</summary>
    public static HardwareCeilings Best(HardwareCeilings a, HardwareCeilings b) => a with
    {
        MatmulGflopsFloat32 = Math.Max(a.MatmulGflopsFloat32, b.MatmulGflopsFloat32),
        MatmulGflopsBFloat16 = Math.Max(a.MatmulGflopsBFloat16, b.MatmulGflopsBFloat16),
        CopyGBs = Math.Max(a.CopyGBs, b.CopyGBs),
        SumGBs = Math.Max(a.SumGBs, b.SumGBs),
    };

    public static HardwareCeilings Measure(bool quick, Action<string> log)
    {
        const int n = 2048;
        int runs = quick ? 3 : 7;
        var f32 = MatmulGflops(n, ScalarType.Float32, runs);
        log($"  matmul {n}³ float32: {f32:0.0} GFLOP/s (best of {runs})");
        var bf16 = MatmulGflops(n, ScalarType.BFloat16, runs);
        log($"  matmul {n}³ bfloat16: {bf16:0.0} GFLOP/s (best of {runs})");

        // 512 MiB per buffer: 16× the 32 MiB L3, so every byte comes from DRAM.
        long elements = 128L << 20;
        long bytes = elements * sizeof(float);
        using var _ = NewDisposeScope();
        var source = rand(elements, ScalarType.Float32);
        var destination = empty(elements, ScalarType.Float32);
        destination.copy_(source);   // touch the destination pages before timing
        // STREAM's convention: a copy reads n bytes and writes n bytes (write-allocate traffic is not counted).
        var copy = Timings.Measure(2, runs, _ => destination.copy_(source));
        double copyGBs = 2.0 * bytes / copy.Best / 1e9;
        log($"  copy {bytes >> 20} MiB: {copyGBs:0.0} GB/s read+written (best of {runs})");
        var sum = Timings.Measure(2, runs, _ => { using var s = source.sum(); s.item<float>(); });
        double sumGBs = (double)bytes / sum.Best / 1e9;
        log($"  sum {bytes >> 20} MiB: {sumGBs:0.0} GB/s read (best of {runs})");
        return new HardwareCeilings(f32, bf16, copyGBs, sumGBs, n, bytes);
    }

    static double MatmulGflops(int n, ScalarType dtype, int runs)
    {
        using var _ = NewDisposeScope();
        var a = randn([n, n], dtype);
        var b = randn([n, n], dtype);
        var t = Timings.Measure(2, runs, _ => { using var c = a.matmul(b); });
        return 2.0 * n * n * n / t.Best / 1e9;
    }
}
