using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>A sparse MoE feed-forward computed in this process: router → group tokens by expert → one matmul chain
/// per expert → scatter-add weighted outputs, plus the gated shared expert of Qwen2-MoE. The cluster runtime uses the
/// same router, grouping and <see cref="Combine"/> with experts that live on other nodes.</summary>
public sealed class MoeBlock : nn.Module<Tensor, Tensor>
{
    public readonly TopKRouter gate;
    public readonly TorchSharp.Modules.ModuleList<ExpertMlp> experts;
    public readonly ExpertMlp? shared_expert;
    public readonly Linear? shared_expert_gate;
    readonly int numExperts;

    public MoeBlock(ModelConfig c, ModuleOptions o) : base(nameof(MoeBlock))
    {
        numExperts = c.NumExperts;
        gate = new TopKRouter(c.HiddenSize, c.NumExperts, c.TopK, c.NormTopKProb, o);
        bool mixtral = c.Architecture == Architecture.Mixtral;
        experts = nn.ModuleList(Enumerable.Range(0, c.NumExperts)
            .Select(_ => new ExpertMlp(c.HiddenSize, c.ExpertIntermediateSize, mixtral, o)).ToArray());
        if (c.HasSharedExpert)
        {
            shared_expert = new ExpertMlp(c.HiddenSize, c.SharedExpertIntermediateSize, false, o);
            shared_expert_gate = new Linear(c.HiddenSize, 1, false, o);
        }
        RegisterComponents();
    }

    /// <summary>x: [T, D] (post-attention-normalised) → [T, D].</summary>
    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>Same as forward; adds this step's tokens per expert into <paramref name="tokensPerExpert"/> when given.</summary>
    public Tensor Forward(Tensor x, long[]? tokensPerExpert)
    {
        using var scope = NewDisposeScope();
        using var routing = gate.Route(x);
        using var groups = ExpertGroups.From(routing, numExperts);
        if (tokensPerExpert is not null)
            for (int e = 0; e < numExperts; e++) tokensPerExpert[e] += groups.TokensPerExpert[e];
        var outputs = groups.Groups.Select(g => experts[g.Expert].forward(x.index_select(0, g.TokenIndices))).ToList();
        return Combine(x, groups, outputs, SharedOutput(x)).MoveToOuterDisposeScope();
    }

    /// <summary>sigmoid(shared_expert_gate(x)) · shared_expert(x), or null when the model has no shared expert.</summary>
    public Tensor? SharedOutput(Tensor x) => GatedSharedOutput(shared_expert, shared_expert_gate, x);

    /// <summary>Qwen2-MoE's shared expert scaled by its sigmoid gate; null when there is none.</summary>
    public static Tensor? GatedSharedOutput(ExpertMlp? shared, Linear? gate, Tensor x)
    {
        if (shared is null || gate is null) return null;
        using var scope = NewDisposeScope();
        return (nn.functional.sigmoid(gate.forward(x)) * shared.forward(x)).MoveToOuterDisposeScope();
    }

    /// <summary>Σ over each token's experts of gate weight × expert output, in ascending expert order (so every
    /// placement of the experts sums identically), plus the shared output. expertOutputs[i] belongs to groups.Groups[i].</summary>
    public static Tensor Combine(Tensor x, ExpertGroups groups, IReadOnlyList<Tensor> expertOutputs, Tensor? shared)
    {
        using var scope = NewDisposeScope();
        var output = zeros_like(x);
        for (int i = 0; i < groups.Groups.Count; i++)
        {
            var g = groups.Groups[i];
            output.index_add_(0, g.TokenIndices, expertOutputs[i] * g.GateWeights.unsqueeze(1), 1);
        }
        if (shared is not null) output = output + shared;
        return output.MoveToOuterDisposeScope();
    }
}
