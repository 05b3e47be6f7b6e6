using MoeCluster.Model.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>RMSNorm as Hugging Face computes it: normalise in float32, cast back, then scale.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    readonly double eps;

    public RmsNorm(long size, double eps, ModuleOptions o) : base(nameof(RmsNorm))
    {
        this.eps = eps;
        weight = new Parameter(ones([size], o.DType, o.Device), requires_grad: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (SmallRmsNorm.Applies(x, weight)) return SmallRmsNorm.Run(x, weight, eps);   // decode-sized: one pass, no dispatches
        using var scope = NewDisposeScope();
        var h = x.to(ScalarType.Float32);
        h = h * rsqrt(h.pow(2).mean([-1], keepdim: true) + eps);
        return (weight * h.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
