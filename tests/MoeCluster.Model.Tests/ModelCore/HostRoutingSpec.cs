using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

/// <summary>The host routing and combine against the TorchSharp ops they replace (still reachable through
/// <see cref="HostRouting.OffOnThisThread"/>): the same groups, gate weights, traces and block outputs, bit for bit, for
/// every architecture, both dtypes, and router logits with ties.</summary>
public class HostRoutingSpec
{
    public static TheoryData<Architecture, ScalarType> Cases()
    {
        var data = new TheoryData<Architecture, ScalarType>();
        foreach (var a in Enum.GetValues<Architecture>())
            foreach (var d in new[] { ScalarType.Float32, ScalarType.BFloat16 }) data.Add(a, d);
        return data;
    }

    static MoeTransformer Model(Architecture a, ScalarType dtype) => TinyModels.Random(a, o: new ModuleOptions(dtype, CPU));

    static (ExpertGroups Groups, RoutingTrace Trace) Route(MoeBlock block, Tensor x, bool host)
    {
        var traces = new List<RoutingTrace>();
        block.OnRouted = traces.Add;
        try
        {
            using var off = host ? null : HostRouting.OffOnThisThread();
            var groups = block.Route(x);
            Assert.Equal(host, groups.OnHost);
            return (groups, Assert.Single(traces));
        }
        finally { block.OnRouted = null; }
    }

    static void SameGroups(ExpertGroups expected, ExpertGroups actual)
    {
        Assert.Equal(expected.TokensPerExpert, actual.TokensPerExpert);
        Assert.Equal(expected.Groups.Select(g => g.Expert), actual.Groups.Select(g => g.Expert));
        for (int i = 0; i < expected.Groups.Count; i++)
        {
            var (e, a) = (expected.Groups[i], actual.Groups[i]);
            Assert.Equal(e.TokenIndices.data<long>().ToArray(), a.TokenIndices.data<long>().ToArray());
            Assert.Equal(e.GateWeights.dtype, a.GateWeights.dtype);
            Assert.Equal(Bits(e.GateWeights), Bits(a.GateWeights));
        }
    }

    static int[] Bits(Tensor t) => t.to(ScalarType.Float32).contiguous().data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    static void SameTrace(RoutingTrace expected, RoutingTrace actual)
    {
        Assert.Equal(expected.TopK, actual.TopK);
        Assert.Equal(expected.Experts, actual.Experts);
        for (int t = 0; t < expected.Entropy.Length; t++) Assert.Equal(expected.Entropy[t], actual.Entropy[t], 5);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Host_routing_groups_the_tokens_exactly_as_the_TorchSharp_ops_do(Architecture a, ScalarType dtype)
    {
        using var model = Model(a, dtype);
        var block = model.Layers[0].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (int tokens in new[] { 1, 3, 17, 32 })
        {
            var x = randn(tokens, model.Config.HiddenSize, generator: new Generator((ulong)tokens)).to(dtype);
            var (reference, referenceTrace) = Route(block, x, host: false);
            var (host, hostTrace) = Route(block, x, host: true);
            using (reference) using (host)
            {
                SameGroups(reference, host);
                SameTrace(referenceTrace, hostTrace);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Tied_router_logits_choose_the_same_experts_in_the_same_order_on_both_paths(Architecture a, ScalarType dtype)
    {
        using var model = Model(a, dtype);
        var block = model.Layers[0].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int E = model.Config.NumExperts;
        var x = randn(9, model.Config.HiddenSize, generator: new Generator(11)).to(dtype);
        // Experts 1, 3 and 4 share one router row, so every token ties between them; token 0 is all zeros, so all E tie.
        var original = block.gate.weight.clone();
        try
        {
            block.gate.weight.index_copy_(0, tensor(new long[] { 3, 4 }), block.gate.weight[1].unsqueeze(0).expand(2, -1));
            x[0].zero_();
            var (reference, referenceTrace) = Route(block, x, host: false);
            var (host, hostTrace) = Route(block, x, host: true);
            using (reference) using (host)
            {
                SameGroups(reference, host);
                SameTrace(referenceTrace, hostTrace);
                // The all-tied token takes the lowest experts, in ascending order, on both paths.
                Assert.Equal(Enumerable.Range(0, model.Config.TopK), hostTrace.Experts.Take(model.Config.TopK));
                Assert.True(E > model.Config.TopK);
            }
        }
        finally { block.gate.weight.copy_(original); }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_block_routed_and_combined_on_the_host_gives_the_TorchSharp_path_s_output_bit_for_bit(Architecture a, ScalarType dtype)
    {
        using var model = Model(a, dtype);
        var block = model.Layers[0].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (int tokens in new[] { 1, 2, 13, 32 })
        {
            var x = randn(tokens, model.Config.HiddenSize, generator: new Generator(100 + (ulong)tokens)).to(dtype);
            Tensor reference;
            using (HostRouting.OffOnThisThread()) reference = block.forward(x);
            var host = block.forward(x);
            Assert.Equal(dtype, host.dtype);
            Assert.Equal(Bits(reference), Bits(host));
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void The_host_combine_adds_weighted_rows_as_index_add_does_on_both_inner_loops(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(5);
        const int T = 5, D = 70;   // 70: two vectors of 32 and a scalar tail in bfloat16, four of 16 and a tail in float32
        var y = randn(4, D).to(dtype);
        var shared = randn(T, D).to(dtype);
        long[] tokens = [0, 2, 2, 4];
        var weights = randn(4).to(dtype);
        var w = weights.to(ScalarType.Float32).data<float>().ToArray();

        var expected = zeros(T, D, dtype);
        expected.index_add_(0, tensor(tokens), y * weights.unsqueeze(1), 1);
        expected = expected + shared;
        foreach (var path in new[] { KernelPath.Vector512, KernelPath.Scalar })
        {
            var actual = zeros(T, D, dtype);
            // Tokens in two calls, as two experts' groups arrive.
            ExpertRows.Accumulate(actual, tokens[..2], w[..2], y.narrow(0, 0, 2), path);
            ExpertRows.Accumulate(actual, tokens[2..], w[2..], y.narrow(0, 2, 2), path);
            ExpertRows.Add(actual, shared, path);
            Assert.Equal(Bits(expected), Bits(actual));
        }
    }

    [Fact]
    public void Gathered_rows_are_index_select_s_rows_and_a_group_of_every_token_reads_the_batch_itself()
    {
        using var scope = NewDisposeScope();
        var x = randn(6, 32);
        var some = new ExpertGroup(0, [1L, 4, 5], [.5f, .25f, 1f], ScalarType.Float32);
        Assert.True(x.index_select(0, tensor(new long[] { 1, 4, 5 })).eq(some.Rows(x)).all().item<bool>());
        var all = new ExpertGroup(1, [0L, 1, 2, 3, 4, 5], new float[6], ScalarType.Float32);
        using var rows = all.Rows(x);
        Assert.True(rows.eq(x).all().item<bool>());
        rows[2, 3] = 42f;   // a view of the batch, not a copy
        Assert.Equal(42f, x[2, 3].item<float>());
        Assert.Equal([1L, 4, 5], some.TokenIndices.data<long>().ToArray());
        some.Dispose();
        all.Dispose();
    }
}
