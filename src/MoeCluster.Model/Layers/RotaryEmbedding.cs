using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Rotary position embedding in the Hugging Face rotate-half layout: the first half of each head's
/// dims pairs with the second half. Tables are computed once in float32 and kept in the compute dtype; with
/// <c>rope_scaling</c> (yarn) the frequencies and the cos/sin scale come from <see cref="RopeScaling"/>.</summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly Tensor cos, sin;   // [P, Dh]
    public int MaxPositions { get; }

    public RotaryEmbedding(int headDim, int maxPositions, double theta, ModuleOptions o, RopeScaling? scaling = null, int maxPositionEmbeddings = 0)
    {
        MaxPositions = maxPositions;
        using var scope = NewDisposeScope();
        double attentionScaling = 1.0;
        Tensor invFreq;                                       // [Dh/2]
        if (scaling is null || scaling.Type == "default")
        {
            // float32 throughout, as transformers computes the default table.
            invFreq = 1.0 / pow(theta, arange(0, headDim, 2, ScalarType.Int64).to(ScalarType.Float32) / headDim);
        }
        else
        {
            (var inverse, attentionScaling) = scaling.Compute(headDim, theta, maxPositionEmbeddings > 0 ? maxPositionEmbeddings : maxPositions);
            invFreq = tensor(inverse.Select(f => (float)f).ToArray());
        }
        var t = arange(maxPositions, ScalarType.Float32);
        var freqs = outer(t, invFreq);                        // [P, Dh/2]
        var emb = cat([freqs, freqs], -1);                    // [P, Dh]
        cos = (emb.cos() * attentionScaling).to(o.DType, o.Device).DetachFromDisposeScope();
        sin = (emb.sin() * attentionScaling).to(o.DType, o.Device).DetachFromDisposeScope();
    }

    /// <summary>x: [T, heads, Dh]; positions: [T] int64. Returns the rotated tensor.</summary>
    public Tensor Apply(Tensor x, Tensor positions)
    {
        using var scope = NewDisposeScope();
        var c = cos.index_select(0, positions).unsqueeze(1);   // [T, 1, Dh]
        var s = sin.index_select(0, positions).unsqueeze(1);
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return (x * c + rotated * s).MoveToOuterDisposeScope();
    }

    public void Dispose() { cos.Dispose(); sin.Dispose(); }
}
