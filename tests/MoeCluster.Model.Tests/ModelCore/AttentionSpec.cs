using MoeCluster.Model.Layers;
using TorchSharp;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class AttentionSpec
{
    /// <summary>Full-matrix causal attention written from the equations, independent of the module's code paths.</summary>
    static Tensor Naive(Attention att, ModelConfig c, Tensor x)
    {
        int n = (int)x.shape[0], H = c.NumHeads, G = c.NumKvHeads, Dh = c.HeadDim;
        var p = att.named_parameters().ToDictionary(q => q.name, q => q.parameter);
        Tensor Proj(string name) => nn.functional.linear(x, p[name + ".weight"], p.GetValueOrDefault(name + ".bias"));
        Tensor Rms(Tensor t, string name) { var f = t * rsqrt(t.pow(2).mean([-1], keepdim: true) + c.RmsNormEps); return f * p[name + ".weight"]; }
        var q = Proj("q_proj"); var k = Proj("k_proj"); var v = Proj("v_proj");
        if (c.Architecture == Architecture.Olmoe)
        {
            q = Rms(q, "q_norm"); k = Rms(k, "k_norm");
            var clip = c.ClipQkv!.Value; q = q.clamp(-clip, clip); k = k.clamp(-clip, clip); v = v.clamp(-clip, clip);
        }
        q = q.view(n, H, Dh); k = k.view(n, G, Dh); v = v.view(n, G, Dh);
        if (c.Architecture == Architecture.Qwen3Moe) { q = Rms(q, "q_norm"); k = Rms(k, "k_norm"); }
        // rotate-half rotary from the formula
        var inv = tensor(Enumerable.Range(0, Dh / 2).Select(i => (float)(1.0 / Math.Pow(c.RopeTheta, 2.0 * i / Dh))).ToArray());
        var ang = arange(n, ScalarType.Float32).unsqueeze(1) * inv.unsqueeze(0);            // [n, Dh/2]
        var cos = cat([ang.cos(), ang.cos()], -1).unsqueeze(1); var sin = cat([ang.sin(), ang.sin()], -1).unsqueeze(1);
        Tensor Rot(Tensor t) => t * cos + cat([-t.narrow(-1, Dh / 2, Dh / 2), t.narrow(-1, 0, Dh / 2)], -1) * sin;
        q = Rot(q); k = Rot(k);
        var kr = k.repeat_interleave(H / G, dim: 1); var vr = v.repeat_interleave(H / G, dim: 1);  // [n, H, Dh]
        var scores = q.permute(1, 0, 2).matmul(kr.permute(1, 2, 0)) / Math.Sqrt(Dh);         // [H, n, n]
        var mask = ones(n, n).tril().logical_not();
        var probs = scores.masked_fill(mask, float.NegativeInfinity).softmax(-1);
        var o = probs.matmul(vr.permute(1, 0, 2)).permute(1, 0, 2).reshape(n, H * Dh);
        return nn.functional.linear(o, p["o_proj.weight"]);
    }

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Prefill_attention_equals_a_naive_full_matrix_computation(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var c = model.Config;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(9, c.HiddenSize, generator: new Generator(5));
        using var cache = new KvCache(2, c.NumKvHeads, 16, c.HeadDim, model.Options);
        var actual = model.Layers[0].self_attn.Forward(x, StepLayout.Single(1, 0, 9), cache, model.Rotary);
        var expected = Naive(model.Layers[0].self_attn, c, x);
        Assert.True(allclose(actual, expected, rtol: 1e-4, atol: 1e-5), $"max diff {(actual - expected).abs().max().item<float>()}");
    }

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Batched_decode_attention_equals_the_naive_computation_of_each_sequence(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var c = model.Config;
        var att = model.Layers[0].self_attn;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int[] lengths = [3, 7, 1];
        int[] slots = [2, 0, 1];
        var xs = lengths.Select((n, i) => randn(n + 1, c.HiddenSize, generator: new Generator((ulong)(10 + i)))).ToArray();
        using var cache = new KvCache(3, c.NumKvHeads, 16, c.HeadDim, model.Options);
        for (int i = 0; i < 3; i++) att.Forward(xs[i].narrow(0, 0, lengths[i]), StepLayout.Single(slots[i], 0, lengths[i]), cache, model.Rotary);
        var decodeInput = cat(xs.Select((x, i) => x.narrow(0, lengths[i], 1)).ToArray(), 0);
        var layout = new StepLayout(lengths.Select((n, i) => new SequenceSegment(slots[i], n, 1)).ToArray());
        Assert.True(layout.IsPureDecode);
        var actual = att.Forward(decodeInput, layout, cache, model.Rotary);
        for (int i = 0; i < 3; i++)
        {
            var expected = Naive(att, c, xs[i])[lengths[i]];
            Assert.True(allclose(actual[i], expected, rtol: 1e-4, atol: 1e-5), $"sequence {i}: max diff {(actual[i] - expected).abs().max().item<float>()}");
        }
    }

    [Fact]
    public void A_step_beyond_the_cache_capacity_is_rejected_before_any_write()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var cache = new KvCache(1, 2, 4, 8, model.Options);
        using var x = zeros(5, 32);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Layers[0].self_attn.Forward(x, StepLayout.Single(0, 0, 5), cache, model.Rotary));
        Assert.Contains("needs 5 positions", e.Message);
    }
}
