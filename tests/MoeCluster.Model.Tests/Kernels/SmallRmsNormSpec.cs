using System.Runtime.Intrinsics;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Kernels;

/// <summary>The few-row RMSNorm kernel against the TorchSharp norm it replaces (kept behind
/// <see cref="SmallRmsNorm.OffOnThisThread"/>): hidden-size rows, per-head norms of a strided view (Qwen3's q from the
/// fused projection), whole-projection norms (OLMoE), both dtypes, both loops.</summary>
public class SmallRmsNormSpec
{
    static IEnumerable<KernelPath> Paths => Vector512.IsHardwareAccelerated ? [KernelPath.Vector512, KernelPath.Scalar] : [KernelPath.Scalar];

    [Theory]
    [InlineData(new long[] { 1, 512 }, 512)]
    [InlineData(new long[] { 32, 512 }, 512)]
    [InlineData(new long[] { 5, 8, 64 }, 64)]
    [InlineData(new long[] { 3, 4, 8 }, 8)]
    [InlineData(new long[] { 2, 96 }, 96)]
    public void Norms_match_the_TorchSharp_norm(long[] shape, int size)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(size + shape[0]);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var norm = new RmsNorm(size, 1e-6, new ModuleOptions(dtype, CPU));
            norm.weight.copy_(1 + 0.3 * randn(size));
            // A strided view, as q narrowed from the fused q|k|v projection: rows further apart than their width.
            long width = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            var wide = (3 * randn(shape[0], width + 40)).to(dtype);
            var x = wide.narrow(1, 40, width).view(shape);
            Tensor expected;
            using (SmallRmsNorm.OffOnThisThread()) expected = norm.forward(x);
            Assert.True(SmallRmsNorm.Applies(x, norm.weight));
            foreach (var path in Paths)
            {
                var actual = SmallRmsNorm.Run(x, norm.weight, 1e-6, path);
                Assert.Equal(expected.shape, actual.shape);
                var e = expected.to(ScalarType.Float32);
                var diff = (e - actual.to(ScalarType.Float32)).abs();
                // float32: the sum of squares in another order (a few ulps of the scale); bfloat16: a rounding step.
                var allowed = dtype == ScalarType.BFloat16 ? e.abs() * (1.0 / 128) : e.abs() * 1e-6 + 1e-7;
                Assert.True((diff - allowed).max().item<float>() <= 0, $"{dtype} {path}: max |diff| {diff.max().item<float>()}");
            }
        }
    }

    [Fact]
    public void Prefill_sized_inputs_and_training_stay_on_libtorch()
    {
        using var scope = NewDisposeScope();
        var weight = ones(512);
        Assert.True(SmallRmsNorm.Applies(randn(8, 512), weight));
        Assert.False(SmallRmsNorm.Applies(randn(1024, 512), weight));
        using (enable_grad()) Assert.False(SmallRmsNorm.Applies(randn(2, 512).requires_grad_(), weight));
        Assert.False(SmallRmsNorm.Applies(randn(2, 512).to(ScalarType.BFloat16), weight));
    }
}
