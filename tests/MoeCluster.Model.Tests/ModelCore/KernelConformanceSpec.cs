using System.Runtime.Intrinsics;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

/// <summary>The small-batch kernel against the TorchSharp path it replaces: plain, biased, fused (q|k|v side by side)
/// and SwiGLU segments, every row-tile shape (1–16 rows, short last weight blocks), both dtypes, both inner loops
/// (the AVX-512 tiles only where the machine has them). float32 differs from libtorch by summation order only;
/// bfloat16 by at most one rounding step of the output.</summary>
public class KernelConformanceSpec
{
    static IEnumerable<KernelPath> Paths =>
        (Vector512.IsHardwareAccelerated ? new[] { KernelPath.Vector512, KernelPath.Scalar } : [KernelPath.Scalar])
        .Concat(NativeBFloat16Dot.Available ? [KernelPath.BFloat16Dot] : []);

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 64, 1 }, { 2, 32, 4 }, { 3, 96, 13 }, { 4, 64, 8 }, { 5, 32, 7 }, { 7, 128, 70 }, { 16, 512, 9 }, { 9, 1408, 130 },
    };

    /// <summary>bfloat16 outputs may be one rounding step apart (the float32 sums differ in order); float32 ones by the
    /// rounding error of a K-term sum of unit-scale products (≈ 1e-5·√K absolute, well above float32's 6e-8·√K).</summary>
    static void Close(Tensor expected, Tensor actual, ScalarType dtype, int k, int bf16Steps = 1)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(dtype, actual.dtype);
        var e = expected.to(ScalarType.Float32);
        var a = actual.to(ScalarType.Float32);
        double sum = 1e-5 * Math.Sqrt(k);
        var allowed = dtype == ScalarType.BFloat16 ? e.abs() * (bf16Steps / 128.0) + sum : e.abs() * 1e-5 + sum;
        var excess = ((e - a).abs() - allowed).max().item<float>();
        Assert.True(excess <= 0, $"{dtype}: {excess} beyond tolerance; max |diff| {(e - a).abs().max().item<float>()}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Products_match_linear_for_every_tile_shape(int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(m * 1000 + k + n);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var x = randn(m, k).to(dtype);
            var w = randn(n, k).to(dtype);
            var b = randn(n).to(dtype);
            var w2 = randn(n + 3, k).to(dtype);
            foreach (var path in Paths)
            {
                Close(nn.functional.linear(x, w), SmallMatMul.Run(x, [new MatMulSegment(w)], path), dtype, k);
                Close(nn.functional.linear(x, w, b), SmallMatMul.Run(x, [new MatMulSegment(w, b)], path), dtype, k);
                var fused = SmallMatMul.Run(x, [new MatMulSegment(w, b), new MatMulSegment(w2)], path);
                Close(nn.functional.linear(x, w, b), fused.narrow(1, 0, n), dtype, k);
                Close(nn.functional.linear(x, w2), fused.narrow(1, n, n + 3), dtype, k);
            }
        }
    }

    [Theory]
    [InlineData(1, 64, 48)]
    [InlineData(6, 512, 1408)]
    public void SwiGlu_segments_match_silu_of_gate_times_up(int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(n);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var x = randn(m, k).to(dtype);
            var gate = (randn(n, k) * 0.2).to(dtype);
            var up = (randn(n, k) * 0.2).to(dtype);
            var expected = nn.functional.silu(nn.functional.linear(x, gate)) * nn.functional.linear(x, up);
            // bfloat16 rounds the gate and the up product before multiplying them (as the TorchSharp path does), so a
            // gate one step apart from libtorch's (sums in another order: the native tile's vdpbf16ps adds each pair's
            // odd product first) can put the output two steps apart: 1 element of 8,448 at 6×1408 with the native tile,
            // whose mean error against a float64 reference equals libtorch's (3.52e-3 relative).
            foreach (var path in Paths)
                Close(expected, SmallMatMul.Run(x, [new MatMulSegment(gate, Up: up)], path), dtype, k, bf16Steps: 2);
        }
    }

    [Theory]
    [InlineData(1, 64, 9)]
    [InlineData(5, 512, 70)]
    [InlineData(32, 1408, 36)]
    public void Int8_weights_with_their_scales_match_linear_on_the_dequantised_weights(int m, int k, int n)
    {
        // Σ x·q then × scale against linear(x, q·scale): the same products, rounded in another order.
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(m + k + n);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var x = randn(m, k).to(dtype);
            using var w = Int8Weights.Quantise(randn(n, k) * 0.2);
            using var u = Int8Weights.Quantise(randn(n, k) * 0.2);
            var wf = w.Dequantise(ScalarType.Float32);
            var uf = u.Dequantise(ScalarType.Float32);
            var xf = x.to(ScalarType.Float32);
            var plain = nn.functional.linear(xf, wf).to(dtype);
            // In bfloat16 the SwiGLU rounds where the TorchSharp path does: gate, silu, up, product.
            var swiglu = nn.functional.silu(nn.functional.linear(xf, wf).to(dtype)) * nn.functional.linear(xf, uf).to(dtype);
            foreach (var path in Paths)
            {
                Close(plain, SmallMatMul.Run(x, [new MatMulSegment(w.Values, Scales: w.Scales)], path), dtype, k);
                Close(swiglu, SmallMatMul.Run(x, [new MatMulSegment(w.Values, Up: u.Values, Scales: w.Scales, UpScales: u.Scales)], path), dtype, k);
            }
        }
    }

    [Theory]
    [InlineData(32, 1)]
    [InlineData(512, 70)]
    [InlineData(1408, 13)]
    public void A_single_row_streamed_row_by_row_equals_the_tile_bit_for_bit(int k, int n)
    {
        // The one-row path reads each block's rows one after another; its arithmetic per row is the 4x1 tile's, so a
        // sequence's logits do not depend on whether it was decoded alone.
        if (!Vector512.IsHardwareAccelerated) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(k + n);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var x = randn(1, k).to(dtype);
            var w = randn(n, k).to(dtype);
            var up = randn(n, k).to(dtype);
            var b = randn(n).to(dtype);
            using var q = Int8Weights.Quantise(randn(n, k));
            MatMulSegment[][] calls =
            [
                [new MatMulSegment(w, b)],
                [new MatMulSegment(w, Up: up), new MatMulSegment(up)],
                [new MatMulSegment(q.Values, Scales: q.Scales)],
            ];
            foreach (var segments in calls)
            {
                var streamed = SmallMatMul.Run(x, segments);
                Tensor tiled;
                using (SmallMatMul.StreamingOffOnThisThread()) tiled = SmallMatMul.Run(x, segments);
                Assert.True(streamed.equal(tiled).all().item<bool>(), $"{dtype}, {segments.Length} segment(s), {segments[0].Weight.dtype} weights");
            }
        }
    }

    [Fact]
    public void Bfloat16_router_logits_through_the_kernel_match_linear_within_a_rounding_step()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(8);
        var router = new TopKRouter(512, 8, 2, true, new ModuleOptions(ScalarType.BFloat16, CPU));
        router.weight.copy_(randn(8, 512) * 0.05);
        var x = randn(1, 512).to(ScalarType.BFloat16);
        var kernel = router.forward(x);
        Tensor libtorch;
        using (SmallMatMul.OffOnThisThread()) libtorch = router.forward(x);
        Close(nn.functional.linear(x, router.weight), kernel, ScalarType.BFloat16, 512);
        Close(libtorch, kernel, ScalarType.BFloat16, 512);
    }

    [Fact]
    public void The_native_bfloat16_tile_is_built_and_loads_wherever_the_cpu_has_avx512_bf16()
    {
        bool cpu = File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo")
            .Any(l => l.StartsWith("flags") && l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains("avx512_bf16"));
        Assert.True(cpu == NativeBFloat16Dot.Available, $"cpu reports avx512_bf16: {cpu}; native tile: {NativeBFloat16Dot.Unavailable ?? "available"}");
    }

    [Fact]
    public void Bfloat16_products_of_2_to_32_rows_take_the_native_tile_and_agree_with_the_managed_tile_within_a_rounding_step()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(12);
        var w = randn(70, 512).to(ScalarType.BFloat16);
        var up = randn(70, 512).to(ScalarType.BFloat16);
        foreach (int m in new[] { 2, 3, 7, 8, 16, 32 })
        {
            var x = randn(m, 512).to(ScalarType.BFloat16);
            Assert.Equal(m <= SmallMatMul.MaxRowsBFloat16 || NativeBFloat16Dot.Usable, SmallMatMul.Applies(x, w));   // above 4 rows only the native tile takes bfloat16
            if (!NativeBFloat16Dot.Available) continue;
            Close(SmallMatMul.Run(x, [new MatMulSegment(w)], KernelPath.Vector512), SmallMatMul.Run(x, [new MatMulSegment(w)]), ScalarType.BFloat16, 512);
            Close(SmallMatMul.Run(x, [new MatMulSegment(w, Up: up)], KernelPath.Vector512), SmallMatMul.Run(x, [new MatMulSegment(w, Up: up)]), ScalarType.BFloat16, 512);
            // Each row's sums do not depend on the tile it fell into (4, 2 or 1 rows).
            var all = SmallMatMul.Run(x, [new MatMulSegment(w)], KernelPath.BFloat16Dot);
            Assert.True(all[m - 1].equal(SmallMatMul.Run(x.narrow(0, m - 1, 1), [new MatMulSegment(w)], KernelPath.BFloat16Dot)[0]).all().item<bool>(), $"row {m - 1} of {m}");
        }
    }

    [Fact]
    public void Int8_weights_without_their_scales_are_refused()
    {
        using var scope = NewDisposeScope();
        using var w = Int8Weights.Quantise(randn(8, 64));
        var e = Assert.Throws<ArgumentException>(() => SmallMatMul.Run(randn(2, 64), [new MatMulSegment(w.Values)]));
        Assert.Contains("scales", e.Message);
    }

    [Fact]
    public void Output_rows_do_not_depend_on_the_other_rows_in_the_call()
    {
        // An expert's rows may be split over replicas (IExpertCompute's contract): each row's result must be the same
        // whatever tile it fell into.
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        var x = randn(11, 256);
        var w = randn(37, 256);
        var all = SmallMatMul.Run(x, [new MatMulSegment(w)]);
        for (int r = 0; r < 11; r++)
            Assert.True(all[r].equal(SmallMatMul.Run(x.narrow(0, r, 1), [new MatMulSegment(w)])[0]).all().item<bool>(), $"row {r}");
    }

    [Fact]
    public void Shapes_it_cannot_take_are_left_to_libtorch()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var w = randn(8, 64);
        Assert.False(SmallMatMul.Supports(randn(2, 48), randn(8, 48), 16));                 // K not a multiple of 32
        Assert.False(SmallMatMul.Supports(randn(17, 64), w, 16));                           // too many rows
        Assert.False(SmallMatMul.Supports(randn(2, 64).to(ScalarType.BFloat16), w, 16));     // mixed dtypes
        Assert.False(SmallMatMul.Supports(randn(2, 64), randn(64, 8).t(), 16));             // non-contiguous weight
        using (var grad = enable_grad())
            Assert.False(SmallMatMul.Supports(randn(2, 64), randn(8, 64).requires_grad_(), 16));   // training
        Assert.Throws<ArgumentException>(() => SmallMatMul.Run(randn(2, 48), [new MatMulSegment(randn(8, 48))]));
    }

    [Fact]
    public void Layers_give_the_same_tokens_with_the_kernel_and_without()
    {
        // The model core with the kernels (small matmul, decode attention, small norm) against the TorchSharp path alone,
        // every architecture, one prefill and decode steps: logits within 1e-3, greedy tokens identical.
        foreach (var a in Enum.GetValues<Architecture>())
        {
            using var model = TinyModels.Random(a);
            var with = Generate(model, kernel: true);
            var without = Generate(model, kernel: false);
            Assert.Equal(without.Tokens, with.Tokens);
            Assert.True(without.MaxLogitDiff(with) < 1e-3, $"{a}: logits differ by {without.MaxLogitDiff(with)}");
        }
    }

    sealed record Run(List<long> Tokens, List<float[]> Logits)
    {
        public double MaxLogitDiff(Run other) => Logits.Zip(other.Logits).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));
    }

    static Run Generate(MoeTransformer model, bool kernel)
    {
        using var off = kernel ? null : SmallMatMul.OffOnThisThread();
        using var attentionOff = kernel ? null : DecodeAttention.OffOnThisThread();
        using var normOff = kernel ? null : SmallRmsNorm.OffOnThisThread();
        {
            using var scope = NewDisposeScope();
            var caches = model.CreateCaches(2, 32);
            try
            {
                var tokens = new List<long>();
                var logits = new List<float[]>();
                int[] prompt = [3, 14, 15, 92, 65];
                var step = model.ForwardTokens(prompt, StepLayout.Single(0, 0, prompt.Length), caches);
                for (int i = 0; i < 6; i++)
                {
                    logits.Add(step.flatten().data<float>().ToArray());
                    long next = step.argmax(-1)[0].item<long>();
                    tokens.Add(next);
                    step = model.ForwardTokens([(int)next], StepLayout.Single(0, prompt.Length + i, 1), caches);
                }
                return new Run(tokens, logits);
            }
            finally { foreach (var c in caches) c.Dispose(); }
        }
    }
}
