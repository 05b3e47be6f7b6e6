using MoeCluster.Model.Kernels;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>A projection's weight [O, I] in either form an expert holds it: dense in the compute dtype, or int8
/// (<see cref="Int8Weights"/>). The small-batch kernel takes both forms as they are; libtorch's GEMMs take
/// <see cref="Dense"/>.</summary>
public readonly record struct ProjectionWeight(Tensor Values, Int8Weights? Int8 = null)
{
    public static implicit operator ProjectionWeight(Tensor dense) => new(dense);

    public static ProjectionWeight From(Int8Weights q) => new(q.Values, q);

    public Tensor? Scales => Int8?.Scales;

    /// <summary>The weight in <paramref name="dtype"/>: the tensor itself, or the int8 values dequantised (a new tensor).</summary>
    public Tensor Dense(ScalarType dtype) => Int8 is { } q ? q.Dequantise(dtype) : Values;

    /// <summary>x Wᵀ (+ b) through the kernel where it takes x, else libtorch on the dense weight.</summary>
    public Tensor Apply(Tensor x, Tensor? bias = null) =>
        ChunkedMatMul.Applies(x, Values) ? ChunkedMatMul.Run(x, [new MatMulSegment(Values, bias, Scales: Scales)]) : nn.functional.linear(x, Dense(x.dtype), bias);
}
