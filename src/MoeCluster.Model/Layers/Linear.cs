using TorchSharp;
using TorchSharp.Modules;
using MoeCluster.Model.Kernels;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>y = x Wᵀ (+ b), with parameters named <c>weight</c>/<c>bias</c> as in the checkpoint. Weights are
/// allocated uninitialised: they are always loaded (or initialised explicitly for training).</summary>
public sealed class Linear : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter? bias;

    public Linear(long inFeatures, long outFeatures, bool hasBias, ModuleOptions o) : base(nameof(Linear))
    {
        weight = new Parameter(empty([outFeatures, inFeatures], o.DType, o.Device), requires_grad: false);
        if (hasBias) bias = new Parameter(zeros([outFeatures], o.DType, o.Device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>Few rows (decode, an expert's tokens) go to <see cref="SmallMatMul"/>, which streams the weight at
    /// memory speed where libtorch's GEMM does not; the rest to libtorch.</summary>
    public override Tensor forward(Tensor x) => Apply(x, weight, bias);

    /// <summary>x Wᵀ (+ b) by whichever path <see cref="forward"/> takes, for weights held outside a module.</summary>
    public static Tensor Apply(Tensor x, Tensor weight, Tensor? bias = null) => new ProjectionWeight(weight).Apply(x, bias);

    /// <summary>This projection as one segment of a fused <see cref="SmallMatMul"/> call.</summary>
    public MatMulSegment Segment => new(weight, bias);
}
