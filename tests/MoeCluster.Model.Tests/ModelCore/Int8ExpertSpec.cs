using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class Int8ExpertSpec
{
    [Fact]
    public void Int8_weights_are_within_half_a_step_of_the_original_in_every_output_channel()
    {
        using var scope = NewDisposeScope();
        var w = randn([24, 40], generator: new Generator(1)) * linspace(0.01, 3, 24).unsqueeze(1);   // rows of very different range
        w[5] = zeros(40);
        using var q = Int8Weights.Quantise(w);
        Assert.Equal(ScalarType.Int8, q.Values.dtype);
        Assert.Equal(new long[] { 24 }, q.Scales.shape);
        var error = (q.Dequantise(ScalarType.Float32) - w).abs().amax([1]);
        Assert.True((error <= q.Scales / 2 + 1e-7).all().item<bool>(), "an entry is off by more than half its row's step");
        Assert.Equal(0f, q.Dequantise(ScalarType.Float32)[5].abs().max().item<float>());
        Assert.Equal(24 * 40 + 24 * 4, q.Bytes);
    }

    [Theory]
    [InlineData(Architecture.Mixtral)]
    [InlineData(Architecture.Qwen2Moe)]
    public void An_int8_expert_computes_what_its_fake_quantised_float_expert_computes_in_a_quarter_of_the_memory(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var expert = model.Layers[0].Moe!.experts[2];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn([5, model.Config.HiddenSize], generator: new Generator(2));
        using var int8 = Int8Expert.From(expert);
        var before = expert.Forward(x);
        Int8Expert.FakeQuantise(expert);
        var fake = expert.Forward(x);
        var y = int8.Forward(x);
        // Was bit-exact while int8 experts dequantised per call; the kernel now scales each finished dot product
        // (Σ x·q × s instead of Σ x·(q·s)), so the two agree to float32 rounding of a K-term sum.
        Assert.True(allclose(y, fake, rtol: 1e-5, atol: 1e-5), $"max difference {(y - fake).abs().max().item<float>()}");
        Assert.True(allclose(y, before, rtol: 0.05, atol: 0.05));   // and close to the float expert
        Assert.True(int8.ParameterBytes < expert.ParameterBytes / 3);
    }
}
