using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>The top-k experts of each token and their gate weights. Weights: [T, k] in the compute dtype;
/// Experts: [T, k] int64; Entropy, when asked for: [T] float32, nats, of each token's gate distribution over all E
/// experts before top-k. The caller owns all three.</summary>
public sealed record Routing(Tensor Weights, Tensor Experts, Tensor? Entropy = null) : IDisposable
{
    public void Dispose() { Weights.Dispose(); Experts.Dispose(); Entropy?.Dispose(); }
}

/// <summary>Softmax over all experts in float32, top-k, optionally renormalise the k weights (Mixtral always does;
/// Qwen/OLMoE when norm_topk_prob), then cast to the compute dtype — the reference implementations' order.</summary>
public sealed class TopKRouter : nn.Module<Tensor, Tensor>
{
    public readonly TorchSharp.Modules.Parameter weight;   // [E, D]
    readonly int topK;
    readonly bool normalise;

    public TopKRouter(int hidden, int experts, int topK, bool normalise, ModuleOptions o) : base(nameof(TopKRouter))
    {
        this.topK = topK;
        this.normalise = normalise;
        weight = new TorchSharp.Modules.Parameter(empty([experts, hidden], o.DType, o.Device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>Router logits [T, E] (also what training's load-balancing loss needs). In bfloat16, few rows go to the
    /// small-batch kernel like the other projections: oneDNN's [1, D]·[E, D]ᵀ costs 12 µs per layer where the kernel
    /// takes 4 (`bench … decode-calls`, with the softmax); in float32 libtorch's is as fast, so it stays. With a
    /// gradient, libtorch.</summary>
    public override Tensor forward(Tensor x) =>
        x.dtype == ScalarType.BFloat16 ? Linear.Apply(x, weight) : nn.functional.linear(x, weight);

    /// <summary>x [T, D] → the tokens of each of the E experts with their gate weights, and the routing trace when
    /// asked for: on the host for few tokens (<see cref="HostRouting"/>, one [T, E] logits tensor and no other op),
    /// else <see cref="Route"/> then <see cref="ExpertGroups.From"/>. Both give the same groups.</summary>
    public ExpertGroups Group(Tensor x, bool trace, out RoutingTrace? routingTrace)
    {
        if (HostRouting.Applies(x, weight))
        {
            using var scope = NewDisposeScope();
            return HostRouting.Route(Probabilities(x), topK, normalise, x.dtype, trace, out routingTrace);
        }
        using var routing = Route(x, entropy: trace);
        routingTrace = trace ? RoutingTrace.From(routing) : null;
        return ExpertGroups.From(routing, (int)weight.shape[0]);
    }

    /// <summary>The gate distribution over all experts, float32 [T, E]: libtorch's softmax on both paths, so the host
    /// routing's weights are the TorchSharp path's bit for bit.</summary>
    Tensor Probabilities(Tensor x) => forward(x).to(ScalarType.Float32).softmax(-1);

    /// <param name="entropy">Also compute each token's routing entropy (for routing statistics).</param>
    public Routing Route(Tensor x, bool entropy = false)
    {
        using var scope = NewDisposeScope();
        var probs = Probabilities(x);                                            // [T, E]
        // The k largest, ties to the lower expert: a stable descending sort (topk leaves the order of ties to the
        // selection algorithm), so that every path — this one, HostRouting — picks the same experts.
        var (sorted, order) = probs.sort(dim: -1, descending: true, stable: true);
        var weights = sorted.narrow(-1, 0, topK);
        var experts = order.narrow(-1, 0, topK);
        if (normalise) weights = weights / weights.sum(-1, keepdim: true);
        // H = −Σ p ln p; p ln p → 0 as p → 0, and a softmax can underflow to exactly 0.
        var h = entropy ? probs.mul(probs.clamp_min(1e-30).log()).sum(-1).neg().MoveToOuterDisposeScope() : null;
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), experts.MoveToOuterDisposeScope(), h);
    }
}
