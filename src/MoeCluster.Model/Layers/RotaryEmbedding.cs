using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Rotary position embedding in the Hugging Face rotate-half layout: the first half of each head's
/// dims pairs with the second half. Tables are computed once in float32 and kept in the compute dtype; with
/// <c>rope_scaling</c> (yarn) the frequencies and the cos/sin scale come from <see cref="RopeScaling"/>.
/// rotate_half(x) · sin equals roll(x, Dh/2) · sin′ with sin′ = [−sin₁, sin₂] (negation is exact), so the sign is
/// folded into the table and a rotation costs a roll, two products and a sum.</summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly Tensor cos, signedSin;   // [P, Dh]
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
        // yarn scales cos and sin by its attention factor (transformers' attention_scaling); 1 otherwise.
        cos = (cat([freqs, freqs], -1).cos() * attentionScaling).to(o.DType, o.Device).DetachFromDisposeScope();
        signedSin = (cat([-freqs.sin(), freqs.sin()], -1) * attentionScaling).to(o.DType, o.Device).DetachFromDisposeScope();
    }

    /// <summary>The cos and sign-folded sin rows at <paramref name="positions"/> ([T] int64): two [T, 1, Dh] tensors
    /// (built once per step, see <see cref="StepContext"/>).</summary>
    public (Tensor Cos, Tensor Sin) Rows(Tensor positions)
    {
        using var scope = NewDisposeScope();
        var c = cos.index_select(0, positions).unsqueeze(1);
        var s = signedSin.index_select(0, positions).unsqueeze(1);
        return (c.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope());
    }

    /// <summary>x: [T, heads, Dh] rotated by the rows of <see cref="Rows"/>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        return (x * cos).addcmul_(x.roll(x.shape[^1] / 2, -1), sin, 1).MoveToOuterDisposeScope();
    }

    /// <summary>x: [T, heads, Dh]; positions: [T] int64. Returns the rotated tensor.</summary>
    public Tensor Apply(Tensor x, Tensor positions)
    {
        using var scope = NewDisposeScope();
        var (c, s) = Rows(positions);
        return Apply(x, c, s).MoveToOuterDisposeScope();
    }

    public void Dispose() { cos.Dispose(); signedSin.Dispose(); }
}
