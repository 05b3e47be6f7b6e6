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

    /// <summary>Router logits [T, E] (also what training's load-balancing loss needs).</summary>
    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight);

    /// <param name="entropy">Also compute each token's routing entropy (for routing statistics).</param>
    public Routing Route(Tensor x, bool entropy = false)
    {
        using var scope = NewDisposeScope();
        var probs = forward(x).to(ScalarType.Float32).softmax(-1);                // [T, E]
        var (weights, experts) = probs.topk(topK, dim: -1);
        if (normalise) weights = weights / weights.sum(-1, keepdim: true);
        // H = −Σ p ln p; p ln p → 0 as p → 0, and a softmax can underflow to exactly 0.
        var h = entropy ? probs.mul(probs.clamp_min(1e-30).log()).sum(-1).neg().MoveToOuterDisposeScope() : null;
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), experts.MoveToOuterDisposeScope(), h);
    }
}
