using MoeCluster.Model.Layers;
using TorchSharp;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class MoeBlockSpec
{
    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Moe_block_equals_an_explicit_per_token_computation(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var c = model.Config;
        var block = model.Layers[0].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(11, c.HiddenSize, generator: new Generator(3));
        var actual = block.forward(x);

        for (int t = 0; t < 11; t++)
        {
            var xt = x[t].unsqueeze(0);
            var probs = nn.functional.linear(xt, block.gate.weight).softmax(-1)[0];
            var p = probs.data<float>().ToArray();
            var top = Enumerable.Range(0, c.NumExperts).OrderByDescending(e => p[e]).Take(c.TopK).ToArray();
            double norm = c.NormTopKProb ? top.Sum(e => p[e]) : 1.0;
            var expected = zeros(c.HiddenSize);
            foreach (var e in top)
            {
                var ex = block.experts[e];
                var parameters = ex.named_parameters().ToDictionary(n => n.name, n => n.parameter);
                string g = a == Architecture.Mixtral ? "w1" : "gate_proj", u = a == Architecture.Mixtral ? "w3" : "up_proj", d = a == Architecture.Mixtral ? "w2" : "down_proj";
                var hidden = nn.functional.silu(xt.matmul(parameters[g + ".weight"].t())) * xt.matmul(parameters[u + ".weight"].t());
                expected += hidden.matmul(parameters[d + ".weight"].t())[0] * (float)(p[e] / norm);
            }
            if (c.HasSharedExpert)
            {
                var shared = block.shared_expert!.forward(xt)[0];
                expected += nn.functional.sigmoid(block.shared_expert_gate!.forward(xt))[0] * shared;
            }
            Assert.True(allclose(actual[t], expected, rtol: 1e-4, atol: 1e-5), $"token {t}: max diff {(actual[t] - expected).abs().max().item<float>()}");
        }
    }

    [Fact]
    public void Tokens_are_grouped_by_expert_in_ascending_order_with_their_gate_weights()
    {
        using var scope = NewDisposeScope();
        var experts = tensor(new long[,] { { 2, 0 }, { 0, 3 }, { 2, 3 } });
        var weights = tensor(new float[,] { { .6f, .4f }, { .7f, .3f }, { .5f, .5f } });
        using var routing = new Routing(weights.alias(), experts.alias());
        using var groups = ExpertGroups.From(routing, 4);
        Assert.Equal([2L, 0, 2, 2], groups.TokensPerExpert);
        Assert.Equal([0, 2, 3], groups.Groups.Select(g => g.Expert));
        Assert.Equal([0L, 1], groups.Groups[0].TokenIndices.data<long>().ToArray());
        Assert.Equal([.4f, .7f], groups.Groups[0].GateWeights.data<float>().ToArray());
        Assert.Equal([1L, 2], groups.Groups[2].TokenIndices.data<long>().ToArray());
    }
}
