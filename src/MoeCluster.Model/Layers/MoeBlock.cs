using MoeCluster.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>
/// A sparse MoE feed-forward as a pipeline of stages, each callable on its own: <see cref="Route"/> (router → top-k →
/// tokens grouped by expert), expert compute (<see cref="IExpertCompute"/>, one per routed expert), <see cref="Combine"/>
/// (Σ gate weight × expert output in ascending expert order, plus Qwen2-MoE's gated shared expert). The single process
/// runs all stages here (<see cref="Forward"/>); the cluster's router actor hosts a block built without routed experts
/// and sends the groups to expert actors, which host one <see cref="IExpertCompute"/> each. Parameter names are the
/// checkpoint's under <see cref="WeightNames.FeedForwardPrefix"/>.
/// Legend: T tokens, D hidden, E experts, k experts per token.
/// </summary>
public sealed class MoeBlock : nn.Module<Tensor, Tensor>
{
    public readonly TopKRouter gate;
    /// <summary>The routed experts; empty in a block built with <c>routedExperts: false</c> (the cluster's router).</summary>
    public readonly TorchSharp.Modules.ModuleList<ExpertMlp> experts;
    public readonly ExpertMlp? shared_expert;
    public readonly Linear? shared_expert_gate;
    readonly int numExperts;

    /// <param name="routedExperts">false: router and shared expert only, for a host whose experts live elsewhere.</param>
    public MoeBlock(ModelConfig c, ModuleOptions o, bool routedExperts = true) : base(nameof(MoeBlock))
    {
        numExperts = c.NumExperts;
        gate = new TopKRouter(c.HiddenSize, c.NumExperts, c.TopK, c.NormTopKProb, o);
        experts = nn.ModuleList(routedExperts ? Enumerable.Range(0, c.NumExperts).Select(_ => ExpertMlp.Routed(c, o)).ToArray() : []);
        if (c.HasSharedExpert)
        {
            shared_expert = ExpertMlp.Shared(c, o);
            shared_expert_gate = new Linear(c.HiddenSize, 1, false, o);
        }
        RegisterComponents();
    }

    public int NumExperts => numExperts;

    /// <summary>x: [T, D] (post-attention-normalised) → [T, D].</summary>
    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>All stages in process; adds this step's tokens per expert into <paramref name="tokensPerExpert"/> when given.</summary>
    public Tensor Forward(Tensor x, long[]? tokensPerExpert)
    {
        if (experts.Count == 0) throw new InvalidOperationException("this MoE block was built without its routed experts; they run elsewhere");
        using var scope = NewDisposeScope();
        using var groups = Route(x, tokensPerExpert);
        return Combine(x, groups, ExpertOutputs(x, groups), SharedOutput(x)).MoveToOuterDisposeScope();
    }

    /// <summary>Expert-compute stage in process: each group's rows of x [T, D] through its expert, [n, D] each, in the
    /// groups' order (tensors in the caller's scope).</summary>
    public IReadOnlyList<Tensor> ExpertOutputs(Tensor x, ExpertGroups groups)
    {
        if (experts.Count == 0) throw new InvalidOperationException("this MoE block was built without its routed experts; they run elsewhere");
        var outputs = new List<Tensor>(groups.Groups.Count);
        foreach (var g in groups.Groups)
        {
            using var rows = g.Rows(x);
            var y = experts[g.Expert].Forward(rows);
            OnExpertOutput?.Invoke(g.Expert, y);
            outputs.Add(y);
        }
        return outputs;
    }

    /// <summary>Router stage: x [T, D] → the tokens of each expert with their gate weights (the caller owns the groups).
    /// Adds the step's tokens per expert into <paramref name="tokensPerExpert"/> ([E]) when given.</summary>
    public ExpertGroups Route(Tensor x, long[]? tokensPerExpert = null)
    {
        var onRouted = OnRouted;
        var groups = gate.Group(x, trace: onRouted is not null, out var trace);
        if (tokensPerExpert is not null)
            for (int e = 0; e < numExperts; e++) tokensPerExpert[e] += groups.TokensPerExpert[e];
        if (trace is not null) onRouted?.Invoke(trace);
        return groups;
    }

    /// <summary>Called after every <see cref="Route"/> with the step's choices copied to the host, for routing
    /// statistics; null (the default) costs nothing. Set by the owner of the block (a router actor, a profiler).</summary>
    public Action<RoutingTrace>? OnRouted { get; set; }

    /// <summary>Called in <see cref="Forward"/> with each routed expert's output [n, D] (down_proj's output, before the
    /// gate weight), for activation statistics such as super-expert detection; the tensor belongs to the block.</summary>
    public Action<int, Tensor>? OnExpertOutput { get; set; }

    /// <summary>sigmoid(shared_expert_gate(x)) · shared_expert(x), or null when the model has no shared expert.</summary>
    public Tensor? SharedOutput(Tensor x)
    {
        if (shared_expert is null || shared_expert_gate is null) return null;
        using var scope = NewDisposeScope();
        return (nn.functional.sigmoid(shared_expert_gate.forward(x)) * shared_expert.forward(x)).MoveToOuterDisposeScope();
    }

    /// <summary>Combine stage: Σ over each token's experts of gate weight × expert output, in ascending expert order (so
    /// every placement of the experts sums identically), plus the shared output. expertOutputs[i] belongs to groups.Groups[i].</summary>
    public static Tensor Combine(Tensor x, ExpertGroups groups, IReadOnlyList<Tensor> expertOutputs, Tensor? shared)
    {
        if (expertOutputs.Count != groups.Groups.Count) throw new ArgumentException($"{expertOutputs.Count} expert outputs for {groups.Groups.Count} groups");
        using var scope = NewDisposeScope();
        if (CombinesOnHost(x, groups, expertOutputs, shared))
        {
            // The same operations as below, without index tensors: out[t] += w · y row by row, bit for bit.
            var sum = zeros_like(x);
            for (int i = 0; i < groups.Groups.Count; i++)
                ExpertRows.Accumulate(sum, groups.Groups[i].Tokens!, groups.Groups[i].Weights!, expertOutputs[i]);
            if (shared is not null) ExpertRows.Add(sum, shared);
            return sum.MoveToOuterDisposeScope();
        }
        var output = zeros_like(x);
        for (int i = 0; i < groups.Groups.Count; i++)
        {
            var g = groups.Groups[i];
            output.index_add_(0, g.TokenIndices, expertOutputs[i] * g.GateWeights.unsqueeze(1), 1);
        }
        if (shared is not null) output = output + shared;
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>Groups routed on the host (so their tokens and weights are there already), CPU tensors of one dtype the
    /// host combine takes, and no gradient wanted.</summary>
    static bool CombinesOnHost(Tensor x, ExpertGroups groups, IReadOnlyList<Tensor> expertOutputs, Tensor? shared) =>
        groups.OnHost && x.device_type == DeviceType.CPU && x.dim() == 2 && ExpertRows.Supports(x.dtype)
        && expertOutputs.All(y => y.dtype == x.dtype && y.device_type == DeviceType.CPU)
        && (shared is null || (shared.dtype == x.dtype && shared.device_type == DeviceType.CPU && shared.dim() == 2 && shared.size(0) == x.size(0) && shared.size(1) == x.size(1)))
        && !(is_grad_enabled() && (x.requires_grad || expertOutputs.Any(y => y.requires_grad) || shared?.requires_grad == true));
}
