using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Token embedding table [V, D]; <c>weight</c> as in the checkpoint.</summary>
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
}
