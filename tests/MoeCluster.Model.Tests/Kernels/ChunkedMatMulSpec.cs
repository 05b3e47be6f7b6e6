using System.Runtime.Intrinsics;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Kernels;

/// <summary>Prefill-sized products through the small-batch kernel in row chunks against the libtorch path they replace
/// (kept behind <see cref="ChunkedMatMul.OffOnThisThread"/>): plain, fused and SwiGLU segments, int8 weights, row counts
/// just above one call's limit, uneven and many chunks; and the whole model prefilling a long prompt.</summary>
public class ChunkedMatMulSpec
{
    /// <summary>float32 sums in another order than MKL's: the rounding error of a K-term sum of unit-scale products.</summary>
    static void Close(Tensor expected, Tensor actual, int k)
    {
        Assert.Equal(expected.shape, actual.shape);
        var excess = ((expected - actual).abs() - (expected.abs() * 1e-5 + 1e-5 * Math.Sqrt(k))).max().item<float>();
        Assert.True(excess <= 0, $"{excess} beyond tolerance; max |diff| {(expected - actual).abs().max().item<float>()}");
    }

    [Theory]
    [InlineData(33, 64, 9)]
    [InlineData(65, 512, 70)]
    [InlineData(130, 96, 13)]
    [InlineData(301, 1408, 36)]
    public void Products_of_more_rows_than_one_kernel_call_match_linear(int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(m + k + n);
        var x = randn(m, k);
        var w = randn(n, k);
        var b = randn(n);
        var w2 = randn(n + 3, k);
        var up = randn(n, k);
        Assert.Equal(Vector512.IsHardwareAccelerated, ChunkedMatMul.Applies(x, w));   // Run itself takes any machine
        Close(nn.functional.linear(x, w, b), ChunkedMatMul.Run(x, [new MatMulSegment(w, b)]), k);
        var fused = ChunkedMatMul.Run(x, [new MatMulSegment(w), new MatMulSegment(w2)]);
        Close(nn.functional.linear(x, w), fused.narrow(1, 0, n), k);
        Close(nn.functional.linear(x, w2), fused.narrow(1, n, n + 3), k);
        var (g, u) = (w / Math.Sqrt(k), up / Math.Sqrt(k));   // unit-scale gate and up, as the tolerance assumes
        Close(nn.functional.silu(nn.functional.linear(x, g)) * nn.functional.linear(x, u),
            ChunkedMatMul.Run(x, [new MatMulSegment(g, Up: u)]), k);
        using var q = Int8Weights.Quantise(w * 0.2);
        Close(nn.functional.linear(x, q.Dequantise(ScalarType.Float32)), ChunkedMatMul.Run(x, [new MatMulSegment(q.Values, Scales: q.Scales)]), k);
    }

    [Fact]
    public void A_row_gets_the_same_bits_whichever_chunk_it_falls_in()
    {
        // A prompt's rows must not depend on how many other rows share the step (prefix caching, chunked prefill).
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(5);
        var x = randn(150, 128);
        var w = randn(40, 128);
        var up = randn(40, 128) / Math.Sqrt(128);
        var all = ChunkedMatMul.Run(x, [new MatMulSegment(w)]);
        var swiglu = ChunkedMatMul.Run(x, [new MatMulSegment(w / Math.Sqrt(128), Up: up)]);
        foreach (int r in new[] { 0, 37, 63, 64, 100, 149 })
        {
            Assert.True(all[r].equal(SmallMatMul.Run(x.narrow(0, r, 1), [new MatMulSegment(w)])[0]).all().item<bool>(), $"row {r}");
            Assert.True(swiglu[r].equal(SmallMatMul.Run(x.narrow(0, r, 1), [new MatMulSegment(w / Math.Sqrt(128), Up: up)])[0]).all().item<bool>(), $"SwiGLU row {r}");
        }
    }

    [Fact]
    public void Prefetching_the_next_weight_block_changes_no_bit_of_the_result()
    {
        // Short last blocks (n not a multiple of 4), two segments and a SwiGLU: the prefetch must stay a hint.
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(9);
        var x = randn(20, 96);
        var w = randn(23, 96); var w2 = randn(6, 96); var up = randn(23, 96);
        int was = SmallMatMul.PrefetchFromRows;
        try
        {
            SmallMatMul.PrefetchFromRows = int.MaxValue;
            var plain = SmallMatMul.Run(x, [new MatMulSegment(w), new MatMulSegment(w2)]);
            var swiglu = SmallMatMul.Run(x, [new MatMulSegment(w, Up: up)]);
            SmallMatMul.PrefetchFromRows = 1;
            Assert.True(plain.equal(SmallMatMul.Run(x, [new MatMulSegment(w), new MatMulSegment(w2)])).all().item<bool>());
            Assert.True(swiglu.equal(SmallMatMul.Run(x, [new MatMulSegment(w, Up: up)])).all().item<bool>());
        }
        finally { SmallMatMul.PrefetchFromRows = was; }
    }

    [Fact]
    public void Switching_it_off_sends_many_rows_to_libtorch_and_leaves_few_rows_to_the_kernel()
    {
        using var scope = NewDisposeScope();
        var w = randn(8, 64);
        using (ChunkedMatMul.OffOnThisThread())
        {
            Assert.False(ChunkedMatMul.Applies(randn(SmallMatMul.MaxRows + 1, 64), w));
            Assert.Equal(Vector512.IsHardwareAccelerated, ChunkedMatMul.Applies(randn(SmallMatMul.MaxRows, 64), w));
        }
        using (SmallMatMul.OffOnThisThread())
            Assert.False(ChunkedMatMul.Applies(randn(SmallMatMul.MaxRows + 1, 64), w));
        Assert.False(ChunkedMatMul.Applies(randn(SmallMatMul.MaxRows + 1, 64).to(ScalarType.BFloat16), w.to(ScalarType.BFloat16)));
    }

    [Fact]
    public void Every_architecture_prefills_a_long_prompt_to_the_same_tokens_with_chunks_and_without()
    {
        // Two prompts of 70 and 45 tokens in one step: projections of 115 rows, experts of more than 32 tokens.
        foreach (var a in Enum.GetValues<Architecture>())
        {
            using var model = TinyModels.Random(a);
            var (withTokens, withLogits) = Prefill(model);
            Tensor withoutLogits;
            long[] withoutTokens;
            using (ChunkedMatMul.OffOnThisThread()) (withoutTokens, withoutLogits) = Prefill(model);
            Assert.Equal(withoutTokens, withTokens);
            double diff = (withLogits - withoutLogits).abs().max().item<float>();
            Assert.True(diff < 1e-3, $"{a}: logits differ by {diff}");
            withLogits.Dispose(); withoutLogits.Dispose();
        }
    }

    static (long[] Tokens, Tensor Logits) Prefill(MoeTransformer model)
    {
        using var scope = NewDisposeScope();
        var caches = model.CreateCaches(2, 80);
        try
        {
            var random = new Random(11);
            var prompt = Enumerable.Range(0, 115).Select(_ => random.Next(model.Config.VocabSize)).ToArray();
            var layout = new StepLayout([new SequenceSegment(0, 0, 70), new SequenceSegment(1, 0, 45)]);
            var logits = model.ForwardTokens(prompt, layout, caches);
            return (logits.argmax(-1).data<long>().ToArray(), logits.MoveToOuterDisposeScope());
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }
}
