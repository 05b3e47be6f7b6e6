using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>The top-k experts of each token and their gate weights. Weights: [T, k] in the compute dtype;
/// Experts: [T, k] int64. The caller owns both.</summary>
public sealed record Routing(Tensor Weights, Tensor Experts) : IDisposable
{
    public void Dispose() { Weights.Dispose(); Experts.Dispose(); }
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

    public Routing Route(Tensor x)
    {
        using var scope = NewDisposeScope();
        var probs = forward(x).to(ScalarType.Float32).softmax(-1);
        var (weights, experts) = probs.topk(topK, dim: -1);
        if (normalise) weights = weights / weights.sum(-1, keepdim: true);
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), experts.MoveToOuterDisposeScope());
    }
}
