using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>One routing decision of a MoE block on the host, for statistics: the top-k experts of every token, row-major
/// (<c>Experts[t * TopK + j]</c>, in the router's order), and each token's gate entropy in nats.</summary>
public sealed record RoutingTrace(int TopK, int[] Experts, float[] Entropy)
{
    /// <summary>Copies <paramref name="routing"/> (which must carry its entropy) to the host.</summary>
    public static RoutingTrace From(Routing routing)
    {
        if (routing.Entropy is null) throw new ArgumentException("the routing was computed without its entropy (TopKRouter.Route(x, entropy: true))", nameof(routing));
        using var scope = NewDisposeScope();
        var experts = routing.Experts.to(ScalarType.Int32).cpu().contiguous().data<int>().ToArray();
        var entropy = routing.Entropy.cpu().contiguous().data<float>().ToArray();
        return new RoutingTrace((int)routing.Experts.shape[1], experts, entropy);
    }
}
