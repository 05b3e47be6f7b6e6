using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>
/// A routed expert held in int8 (<see cref="Int8Weights"/>: w1, w3, w2 each with per-output-channel scales) instead of
/// the compute dtype: a quarter of a float32 expert's memory, half of a bfloat16 one's. Its output is that of an
/// <see cref="ExpertMlp"/> whose weights were replaced by q · scale (<see cref="FakeQuantise"/>, which held-out
/// evaluation uses) up to summation order: decode-sized calls multiply by the int8 weights in the small-batch kernel and
/// scale each dot product (Σ x·q then × scale), larger ones dequantise and compute on q · scale.
/// Legend: n rows, D hidden, I expert width.
/// </summary>
public sealed class Int8Expert : IExpertCompute
{
    readonly Int8Weights gate, up, down;

    Int8Expert(Int8Weights gate, Int8Weights up, Int8Weights down)
    {
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    /// <summary>The int8 form of <paramref name="expert"/> (which the caller still owns and may dispose).</summary>
    public static Int8Expert From(ExpertMlp expert)
    {
        var (g, u, d) = Projections(expert);
        return new Int8Expert(Int8Weights.Quantise(g), Int8Weights.Quantise(u), Int8Weights.Quantise(d));
    }

    /// <summary>Replaces the weights of <paramref name="expert"/> in place by their int8 round trip q · scale, so a model
    /// evaluated in process computes what int8 experts compute.</summary>
    public static void FakeQuantise(ExpertMlp expert)
    {
        using var _ = no_grad();
        var (g, u, d) = Projections(expert);
        foreach (var w in new[] { g, u, d })
        {
            using var q = Int8Weights.Quantise(w);
            using var back = q.Dequantise(w.dtype);
            w.copy_(back);
        }
    }

    /// <summary>w1/gate_proj [I, D], w3/up_proj [I, D], w2/down_proj [D, I], by the checkpoint's names.</summary>
    static (Tensor Gate, Tensor Up, Tensor Down) Projections(ExpertMlp expert)
    {
        var p = expert.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        Tensor Get(string mixtral, string qwen) => p.TryGetValue(mixtral + ".weight", out var t) ? t : p[qwen + ".weight"];
        return (Get("w1", "gate_proj"), Get("w3", "up_proj"), Get("w2", "down_proj"));
    }

    /// <summary>rows: [n, D] → [n, D]. Few rows run the int8 weights through the small-batch kernel (a quarter of the
    /// float32 bytes streamed, the scales applied per dot product); more rows dequantise and take libtorch's GEMMs.</summary>
    public Tensor Forward(Tensor rows)
    {
        using var scope = NewDisposeScope();
        return ExpertMlp.SwiGlu(rows, ProjectionWeight.From(gate), ProjectionWeight.From(up), ProjectionWeight.From(down)).MoveToOuterDisposeScope();
    }

    public long ParameterBytes => gate.Bytes + up.Bytes + down.Bytes;

    public void Dispose() { gate.Dispose(); up.Dispose(); down.Dispose(); }
}
