using MoeCluster.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Grouped-query self-attention over a KV cache, with each architecture's q/k normalisation.
/// Dimension legend: T tokens in the step, H heads, G kv heads, r = H/G heads per kv head, Dh head dim, L keys.</summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    public readonly Linear q_proj, k_proj, v_proj, o_proj;
    public readonly RmsNorm? q_norm, k_norm;
    readonly ModelConfig config;
    readonly double scale;
    readonly AttentionShape shape;

    public Attention(ModelConfig c, ModuleOptions o) : base(nameof(Attention))
    {
        config = c;
        scale = 1.0 / Math.Sqrt(c.HeadDim);
        shape = new AttentionShape(c.NumHeads, c.NumKvHeads, c.HeadDim, c.SlidingWindow);
        q_proj = new Linear(c.HiddenSize, c.NumHeads * c.HeadDim, c.AttentionBias, o);
        k_proj = new Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, c.AttentionBias, o);
        v_proj = new Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, c.AttentionBias, o);
        o_proj = new Linear(c.NumHeads * c.HeadDim, c.HiddenSize, false, o);
        if (c.Architecture == Architecture.Qwen3Moe)
        {   // per head, over Dh
            q_norm = new RmsNorm(c.HeadDim, c.RmsNormEps, o);
            k_norm = new RmsNorm(c.HeadDim, c.RmsNormEps, o);
        }
        else if (c.Architecture == Architecture.Olmoe)
        {   // over the whole projection
            q_norm = new RmsNorm(c.NumHeads * c.HeadDim, c.RmsNormEps, o);
            k_norm = new RmsNorm(c.NumKvHeads * c.HeadDim, c.RmsNormEps, o);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("Attention needs a StepContext and a KvCache: call Forward(x, step, cache)");

    /// <summary>Convenience for one-off calls (tests): builds the step's shared tensors, then <see cref="Forward(Tensor, StepContext, KvCache)"/>.</summary>
    public Tensor Forward(Tensor x, StepLayout layout, KvCache cache, RotaryEmbedding rotary)
    {
        using var step = StepContext.Create(layout, rotary, config, x.device);
        return Forward(x, step, cache);
    }

    /// <summary>x: [T, D] (already normalised) → [T, D]. Writes this step's keys/values into the cache first.</summary>
    public Tensor Forward(Tensor x, StepContext step, KvCache cache)
    {
        var layout = step.Layout;
        cache.Validate(layout);
        using var scope = NewDisposeScope();
        int T = layout.TokenCount, H = config.NumHeads, G = config.NumKvHeads, Dh = config.HeadDim;
        var (q, k, v) = Project(x);
        if (config.Architecture == Architecture.Olmoe)
        {
            q = q_norm!.forward(q);
            k = k_norm!.forward(k);
            if (config.ClipQkv is double c) { q = q.clamp(-c, c); k = k.clamp(-c, c); v = v.clamp(-c, c); }
        }
        q = q.view(T, H, Dh);
        k = k.view(T, G, Dh);
        v = v.view(T, G, Dh);
        if (config.Architecture == Architecture.Qwen3Moe) { q = q_norm!.forward(q); k = k_norm!.forward(k); }
        if (layout.IsPureDecode && DecodeAttention.Applies(q, cache))
            return o_proj.forward(DecodeAttention.Run(q, k, v, step.Cos, step.Sin, layout, cache, shape)).MoveToOuterDisposeScope();
        q = RotaryEmbedding.Apply(q, step.Cos, step.Sin);
        k = RotaryEmbedding.Apply(k, step.Cos, step.Sin);

        var output = layout.IsPureDecode ? Decode(q, k, v, step, cache) : PerSequence(q, k, v, layout, cache);
        return o_proj.forward(output).MoveToOuterDisposeScope();
    }

    /// <summary>q, k, v [T, H·Dh], [T, G·Dh], [T, G·Dh]; with few tokens one pass over the three weights, whose
    /// outputs land side by side (the three are then views of one tensor).</summary>
    (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        if (!ChunkedMatMul.Applies(x, q_proj.weight)) return (q_proj.forward(x), k_proj.forward(x), v_proj.forward(x));
        var qkv = ChunkedMatMul.Run(x, [q_proj.Segment, k_proj.Segment, v_proj.Segment]);
        long nq = q_proj.weight.size(0), nk = k_proj.weight.size(0);
        return (qkv.narrow(1, 0, nq), qkv.narrow(1, nq, nk), qkv.narrow(1, nq + nk, v_proj.weight.size(0)));
    }

    /// <summary>One token per sequence, on the TorchSharp path (where <see cref="DecodeAttention"/> does not apply, and
    /// its cross-check): all sequences attend in one batched matmul over their padded caches.</summary>
    Tensor Decode(Tensor q, Tensor k, Tensor v, StepContext step, KvCache cache)
    {
        int B = step.Layout.Segments.Count, H = config.NumHeads, G = config.NumKvHeads, Dh = config.HeadDim, r = H / G, L = step.KeyCount;
        var slots = step.Slots!;
        cache.Keys.index_put_(k, TensorIndex.Tensor(slots), TensorIndex.Colon, TensorIndex.Tensor(step.WritePositions!));     // k: [B, G, Dh]
        cache.Values.index_put_(v, TensorIndex.Tensor(slots), TensorIndex.Colon, TensorIndex.Tensor(step.WritePositions!));
        var keys = cache.Keys.narrow(2, 0, L).index_select(0, slots);      // [B, G, L, Dh]
        var values = cache.Values.narrow(2, 0, L).index_select(0, slots);
        var scores = q.view(B, G, r, Dh).matmul(keys.transpose(-1, -2)) * scale;   // [B, G, r, L]
        var probs = Softmax(scores, step.Visible!);
        return probs.matmul(values).reshape(B, H * Dh);                    // [B, G, r, Dh] -> [B, H·Dh]
    }

    /// <summary>Prefill chunks (and mixed steps): each sequence attends causally to its cache prefix.</summary>
    Tensor PerSequence(Tensor q, Tensor k, Tensor v, StepLayout layout, KvCache cache)
    {
        int H = config.NumHeads, G = config.NumKvHeads, Dh = config.HeadDim, r = H / G;
        var outputs = new List<Tensor>(layout.Segments.Count);
        long offset = 0;
        foreach (var s in layout.Segments)
        {
            int n = s.Length;
            var ks = k.narrow(0, offset, n).transpose(0, 1);                 // [G, n, Dh]
            var vs = v.narrow(0, offset, n).transpose(0, 1);
            cache.Keys[s.Slot].narrow(1, s.Start, n).copy_(ks);
            cache.Values[s.Slot].narrow(1, s.Start, n).copy_(vs);
            var keys = cache.Keys[s.Slot].narrow(1, 0, s.End);               // [G, L, Dh]
            var values = cache.Values[s.Slot].narrow(1, 0, s.End);
            var qs = q.narrow(0, offset, n).permute(1, 0, 2).reshape(G, r * n, Dh);   // head h = g·r + j
            var scores = qs.matmul(keys.transpose(-1, -2)).view(G, r, n, s.End) * scale;
            var queryPos = arange(s.Start, s.End, ScalarType.Int64, q.device).view(n, 1);
            var keyPos = arange(s.End, ScalarType.Int64, q.device).view(1, s.End);
            var visible = keyPos <= queryPos;                                   // [n, L]
            if (config.SlidingWindow is int w) visible = visible & (keyPos > queryPos - w);
            var probs = Softmax(scores, visible).view(G, r * n, s.End);
            outputs.Add(probs.matmul(values).view(H, n, Dh).transpose(0, 1).reshape(n, H * Dh));
            offset += n;
        }
        return outputs.Count == 1 ? outputs[0] : cat(outputs, 0);
    }

    /// <summary>Softmax in float32 over visible keys, cast back, as Hugging Face's eager attention does.</summary>
    static Tensor Softmax(Tensor scores, Tensor visible) =>
        scores.to(ScalarType.Float32).masked_fill(visible.logical_not(), float.NegativeInfinity).softmax(-1).to(scores.dtype);
}
