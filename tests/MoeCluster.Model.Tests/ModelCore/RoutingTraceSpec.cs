using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class RoutingTraceSpec
{
    [Fact]
    public void A_traced_block_reports_the_experts_it_groups_and_each_token_s_gate_entropy_without_changing_its_output()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var c = model.Config;
        var block = model.Layers[0].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(9, c.HiddenSize, generator: new Generator(5));
        var untraced = block.forward(x);

        var traces = new List<RoutingTrace>();
        block.OnRouted = traces.Add;
        var traced = block.forward(x);
        block.OnRouted = null;

        Assert.True(untraced.eq(traced).all().item<bool>());
        var trace = Assert.Single(traces);
        Assert.Equal(c.TopK, trace.TopK);
        Assert.Equal(9 * c.TopK, trace.Experts.Length);
        using var groups = block.Route(x);
        for (int e = 0; e < c.NumExperts; e++)
            Assert.Equal(groups.TokensPerExpert[e], trace.Experts.Count(x => x == e));
        var probs = nn.functional.linear(x, block.gate.weight).softmax(-1).data<float>().ToArray();
        for (int t = 0; t < 9; t++)
        {
            var p = probs.Skip(t * c.NumExperts).Take(c.NumExperts).ToArray();
            double h = -p.Where(v => v > 0).Sum(v => v * Math.Log(v));
            Assert.Equal(h, trace.Entropy[t], 4);
            var top = Enumerable.Range(0, c.NumExperts).OrderByDescending(e => p[e]).Take(c.TopK).Order();
            Assert.Equal(top, trace.Experts.Skip(t * c.TopK).Take(c.TopK).Order());
        }
    }
}
