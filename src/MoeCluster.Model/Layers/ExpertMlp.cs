using MoeCluster.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) · up(x)). Used for routed experts, the shared expert and dense
/// MLP layers; parameter names follow the checkpoint (Mixtral calls the projections w1/w3/w2).</summary>
public sealed class ExpertMlp : nn.Module<Tensor, Tensor>, IExpertCompute
{
    readonly Linear gate, up, down;

    public ExpertMlp(int hidden, int intermediate, bool mixtralNames, ModuleOptions o) : base(nameof(ExpertMlp))
    {
        gate = new Linear(hidden, intermediate, false, o);
        up = new Linear(hidden, intermediate, false, o);
        down = new Linear(intermediate, hidden, false, o);
        register_module(mixtralNames ? "w1" : "gate_proj", gate);
        register_module(mixtralNames ? "w3" : "up_proj", up);
        register_module(mixtralNames ? "w2" : "down_proj", down);
    }

    /// <summary>One routed expert of <paramref name="c"/> (loaded under <see cref="WeightNames.ExpertPrefix"/>).</summary>
    public static ExpertMlp Routed(ModelConfig c, ModuleOptions o) =>
        new(c.HiddenSize, c.ExpertIntermediateSize, c.Architecture == Architecture.Mixtral, o);

    /// <summary>Qwen2-MoE's shared expert (under the feed-forward prefix, "shared_expert.").</summary>
    public static ExpertMlp Shared(ModelConfig c, ModuleOptions o) => new(c.HiddenSize, c.SharedExpertIntermediateSize, false, o);

    /// <summary>The dense MLP of a non-MoE layer (under <see cref="WeightNames.FeedForwardPrefix"/>).</summary>
    public static ExpertMlp Dense(ModelConfig c, ModuleOptions o) => new(c.HiddenSize, c.IntermediateSize, false, o);

    public long ParameterBytes => parameters().Sum(p => p.NumberOfElements * p.ElementSize);

    /// <summary>x: [n, D] → [n, D].</summary>
    public override Tensor forward(Tensor x)
    {
        return SwiGlu(x, gate.weight, up.weight, down.weight);
    }

    /// <summary>down(silu(x gateᵀ) · x upᵀ) on weights [I, D], [I, D], [D, I], dense or int8; with few rows gate and up
    /// run as one pass over both weights, silu·up applied as each output is produced. Every expert format computes
    /// through here.</summary>
    public static Tensor SwiGlu(Tensor x, ProjectionWeight gate, ProjectionWeight up, ProjectionWeight down)
    {
        using var scope = NewDisposeScope();
        var h = ChunkedMatMul.Applies(x, gate.Values)
            ? ChunkedMatMul.Run(x, [new MatMulSegment(gate.Values, Up: up.Values, Scales: gate.Scales, UpScales: up.Scales)])
            : nn.functional.silu(nn.functional.linear(x, gate.Dense(x.dtype))) * nn.functional.linear(x, up.Dense(x.dtype));
        return down.Apply(h).MoveToOuterDisposeScope();
    }

    public Tensor Forward(Tensor rows) => forward(rows);
}
