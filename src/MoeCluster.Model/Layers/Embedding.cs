using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Token embedding table [V, D]; <c>weight</c> as in the checkpoint (<see cref="WeightNames.Embedding"/>).</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;

    public Embedding(long vocab, long hidden, ModuleOptions o) : base(nameof(Embedding))
    {
        weight = new Parameter(empty([vocab, hidden], o.DType, o.Device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>ids: [T] int64 → [T, D].</summary>
    public override Tensor forward(Tensor ids) => weight.index_select(0, ids);

    /// <summary>The rows of a step's tokens: [T, D].</summary>
    public Tensor Lookup(IReadOnlyList<int> tokens)
    {
        using var scope = NewDisposeScope();
        var ids = new long[tokens.Count];
        for (int i = 0; i < ids.Length; i++) ids[i] = tokens[i];
        return forward(tensor(ids, ScalarType.Int64, weight.device)).MoveToOuterDisposeScope();
    }
}
