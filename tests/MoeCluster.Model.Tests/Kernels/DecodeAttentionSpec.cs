using System.Runtime.Intrinsics;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Kernels;

/// <summary>The fused decode-attention kernel against the TorchSharp decode path it replaces (kept behind
/// <see cref="DecodeAttention.OffOnThisThread"/>): every architecture's q/k handling, float32 and bfloat16, sequences of
/// different lengths in one step, GQA ratios from multi-head to multi-query, a sliding window, several decode steps in a
/// row so the kernel's cache writes feed the next step, both inner loops.</summary>
public class DecodeAttentionSpec
{
    /// <summary>(heads, kv heads, head dim, sliding window): tiny heads (scalar loop), 64-wide heads in GQA 4:1, multi-head
    /// 32-wide, multi-query with a window shorter than most sequences.</summary>
    static readonly (int H, int G, int Dh, int? Window)[] Shapes = [(4, 2, 8, null), (8, 2, 64, null), (4, 4, 32, null), (6, 1, 64, 6)];

    public static TheoryData<Architecture, string, int> Cases()
    {
        var data = new TheoryData<Architecture, string, int>();
        foreach (var a in Enum.GetValues<Architecture>())
            foreach (var dtype in new[] { "float32", "bfloat16" })
                for (int shape = 0; shape < Shapes.Length; shape++) data.Add(a, dtype, shape);
        return data;
    }

    static readonly int[] Lengths = [5, 1, 12, 9];   // cached tokens per sequence before the first decode step
    static readonly int[] SlotOf = [3, 0, 2, 1];
    const int DecodeSteps = 3;

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_steps_match_the_TorchSharp_path_in_outputs_and_cache(Architecture a, string dtypeName, int shape)
    {
        var dtype = dtypeName == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var (config, options) = Configure(a, dtype, Shapes[shape]);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var attention = RandomAttention(config, options, seed: 11 + shape);
        using var rotary = new RotaryEmbedding(config.HeadDim, 64, config.RopeTheta, options);
        using var kernelCache = new KvCache(4, config.NumKvHeads, 32, config.HeadDim, options);
        using var torchCache = new KvCache(4, config.NumKvHeads, 32, config.HeadDim, options);
        var generator = new Generator(5);
        for (int i = 0; i < Lengths.Length; i++)
            attention.Forward(randn(Lengths[i], config.HiddenSize, generator: generator).to(dtype), StepLayout.Single(SlotOf[i], 0, Lengths[i]), kernelCache, rotary);
        torchCache.Keys.copy_(kernelCache.Keys);
        torchCache.Values.copy_(kernelCache.Values);

        for (int step = 0; step < DecodeSteps; step++)
        {
            var layout = new StepLayout(Lengths.Select((n, i) => new SequenceSegment(SlotOf[i], n + step, 1)).ToArray());
            var x = randn(Lengths.Length, config.HiddenSize, generator: generator).to(dtype);
            Assert.True(DecodeAttention.Applies(x, kernelCache));
            var actual = attention.Forward(x, layout, kernelCache, rotary);
            Tensor expected;
            using (DecodeAttention.OffOnThisThread()) expected = attention.Forward(x, layout, torchCache, rotary);
            Close(expected, actual, dtype, $"step {step} output");
        }
        // The rotated keys and the values the kernel wrote, at every position of every slot (untouched ones included).
        Close(torchCache.Keys, kernelCache.Keys, dtype, "keys", cacheEntries: true);
        Assert.True(torchCache.Values.equal(kernelCache.Values).all().item<bool>(), "the values differ");
    }

    [Fact]
    public void The_scalar_loop_matches_the_vector_loops()
    {
        if (!Vector512.IsHardwareAccelerated) return;   // the machine runs the scalar loop only; the spec above covers it
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var options = new ModuleOptions(dtype, CPU);
            var shape = new AttentionShape(8, 2, 64, 7);
            var generator = new Generator(3);
            using var rotary = new RotaryEmbedding(64, 64, 10000, options);
            using var vectorCache = new KvCache(3, 2, 40, 64, options);
            using var scalarCache = new KvCache(3, 2, 40, 64, options);
            vectorCache.Keys.copy_(randn(vectorCache.Keys.shape, generator: generator));
            vectorCache.Values.copy_(randn(vectorCache.Values.shape, generator: generator));
            scalarCache.Keys.copy_(vectorCache.Keys);
            scalarCache.Values.copy_(vectorCache.Values);
            var layout = new StepLayout([new SequenceSegment(2, 30, 1), new SequenceSegment(0, 0, 1), new SequenceSegment(1, 4, 1)]);
            var (cos, sin) = rotary.Rows(layout.PositionsTensor(CPU));
            var q = randn(3, 8 * 64, generator: generator).to(dtype);
            var k = randn(3, 2 * 64, generator: generator).to(dtype);
            var v = randn(3, 2 * 64, generator: generator).to(dtype);
            var vector = DecodeAttention.Run(q, k, v, cos, sin, layout, vectorCache, shape, KernelPath.Vector512);
            var scalar = DecodeAttention.Run(q, k, v, cos, sin, layout, scalarCache, shape, KernelPath.Scalar);
            Close(scalar, vector, dtype, "output");
            Assert.True(scalarCache.Keys.equal(vectorCache.Keys).all().item<bool>(), $"{dtype}: the loops wrote different keys");
        }
    }

    [Fact]
    public void Training_and_the_switch_send_decode_steps_to_the_TorchSharp_path()
    {
        using var scope = NewDisposeScope();
        using var cache = new KvCache(1, 2, 4, 8, ModuleOptions.Cpu32);
        var q = randn(1, 32);
        Assert.True(DecodeAttention.Applies(q, cache));
        using (DecodeAttention.OffOnThisThread()) Assert.False(DecodeAttention.Applies(q, cache));
        Assert.True(DecodeAttention.Applies(q, cache));
        using (enable_grad()) Assert.False(DecodeAttention.Applies(randn(1, 32).requires_grad_(), cache));
        Assert.False(DecodeAttention.Applies(q.to(ScalarType.BFloat16), cache));   // dtype differs from the cache's
    }

    [Fact]
    public void A_prefill_step_is_refused_by_the_kernel()
    {
        using var scope = NewDisposeScope();
        using var cache = new KvCache(1, 1, 8, 32, ModuleOptions.Cpu32);
        using var rotary = new RotaryEmbedding(32, 8, 10000, ModuleOptions.Cpu32);
        var layout = StepLayout.Single(0, 0, 2);
        var (cos, sin) = rotary.Rows(layout.PositionsTensor(CPU));
        var e = Assert.Throws<ArgumentException>(() =>
            DecodeAttention.Run(randn(2, 32), randn(2, 32), randn(2, 32), cos, sin, layout, cache, new AttentionShape(1, 1, 32, null)));
        Assert.Contains("pure-decode", e.Message);
    }

    static (ModelConfig, ModuleOptions) Configure(Architecture a, ScalarType dtype, (int H, int G, int Dh, int? Window) s)
    {
        var config = TinyModels.Config(a) with
        {
            NumHeads = s.H, NumKvHeads = s.G, HeadDim = s.Dh, HiddenSize = 64,
            SlidingWindow = a == Architecture.Mixtral ? s.Window : null,
            AttentionBias = a == Architecture.Qwen2Moe,
        };
        return (config, new ModuleOptions(dtype, CPU));
    }

    /// <summary>Every parameter random (biases and norm weights too, unlike <see cref="ModuleWeights.InitializeRandom"/>),
    /// large enough that attention is far from uniform.</summary>
    static Attention RandomAttention(ModelConfig config, ModuleOptions options, long seed)
    {
        var attention = new Attention(config, options);
        var generator = new Generator((ulong)seed);
        foreach (var (name, p) in attention.named_parameters())
        {
            using var r = randn(p.shape, generator: generator);
            p.copy_(name.EndsWith("norm.weight") ? 1 + 0.2 * r : 0.3 * r);
        }
        return attention;
    }

    /// <summary>float32 outputs: summation order only — AttentionSpec's tolerance of the module against the equations
    /// (rtol 1e-4, atol 1e-5) plus 1e-6 of the largest output, since a sum that cancels keeps the rounding error of its
    /// largest terms. float32 keys: an ulp of the largest (libtorch's rotary may fuse its multiply-add, the kernel's does
    /// not; x·cos + roll(x)·sin may cancel). Values are copied, so exact. bfloat16: one rounding step of the output (measured: identical on an AVX-512 machine).</summary>
    static void Close(Tensor expected, Tensor actual, ScalarType dtype, string what, bool cacheEntries = false)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(dtype, actual.dtype);
        var e = expected.to(ScalarType.Float32);
        var diff = (e - actual.to(ScalarType.Float32)).abs();
        double largest = e.abs().max().item<float>();
        var allowed = dtype == ScalarType.BFloat16 ? e.abs() * (1.0 / 128) + 1e-3 * largest
            : cacheEntries ? zeros_like(e) + 2e-7 * largest
            : e.abs() * 1e-4 + (1e-5 + 1e-6 * largest);
        double excess = (diff - allowed).max().item<float>();
        Assert.True(excess <= 0, $"{dtype} {what}: {excess} beyond tolerance; max |diff| {diff.max().item<float>()}, max |expected| {largest}");
    }
}
