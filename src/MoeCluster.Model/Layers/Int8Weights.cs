using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Symmetric int8 weights with one float32 scale per output channel (row), as weight-only int8 in gpt-fast
/// and MC-MoE's per-expert precision: scale = max |row| ÷ 127, q = round(w ÷ scale) in [−127, 127], w ≈ q · scale.
/// Legend: O output channels, I inputs.</summary>
public sealed class Int8Weights : IDisposable
{
    /// <summary>[O, I] int8.</summary>
    public Tensor Values { get; }
    /// <summary>[O] float32.</summary>
    public Tensor Scales { get; }

    Int8Weights(Tensor values, Tensor scales)
    {
        Values = values;
        Scales = scales;
    }

    /// <summary>Quantises a [O, I] weight (any float dtype); an all-zero row gets scale 1 (it stays zero).</summary>
    public static Int8Weights Quantise(Tensor weight)
    {
        if (weight.shape.Length != 2) throw new ArgumentException($"int8 weights are [out, in] matrices, got [{string.Join(", ", weight.shape)}]");
        using var scope = NewDisposeScope();
        var w = weight.to(ScalarType.Float32);
        var max = w.abs().amax([1]);                                              // [O]
        var scales = where(max > 0, max / 127.0, ones_like(max));
        var q = (w / scales.unsqueeze(1)).round().clamp(-127, 127).to(ScalarType.Int8);
        return new Int8Weights(q.DetachFromDisposeScope(), scales.contiguous().DetachFromDisposeScope());
    }

    /// <summary>q · scale in <paramref name="dtype"/>: [O, I].</summary>
    public Tensor Dequantise(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        return (Values.to(ScalarType.Float32) * Scales.unsqueeze(1)).to(dtype).MoveToOuterDisposeScope();
    }

    public long Bytes => Values.NumberOfElements + Scales.NumberOfElements * 4;

    public void Dispose() { Values.Dispose(); Scales.Dispose(); }
}
