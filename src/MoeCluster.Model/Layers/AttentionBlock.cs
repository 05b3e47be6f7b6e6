using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>The two tensors the attention half of a layer hands to its feed-forward half: Residual h = x + Attn(norm₁(x))
/// and Normed = norm₂(h), both [T, D]. They belong to the caller's dispose scope.</summary>
public readonly record struct AttentionOutput(Tensor Residual, Tensor Normed);

/// <summary>
/// The attention half of one decoder layer — input norm, self-attention over the layer's KV cache, residual, and the
/// post-attention norm the feed-forward half reads. The single-process model (<see cref="DecoderLayer"/>) and the
/// cluster's attention actor both run exactly this block, so the two cannot drift apart.
/// Parameter names are the checkpoint's under <see cref="WeightNames.LayerPrefix"/>: <c>input_layernorm.weight</c>,
/// <c>self_attn.*</c>, <c>post_attention_layernorm.weight</c>; the block reads only those.
/// </summary>
public sealed class AttentionBlock : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm input_layernorm, post_attention_layernorm;
    public readonly Attention self_attn;

    public AttentionBlock(ModelConfig c, ModuleOptions o) : base(nameof(AttentionBlock))
    {
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        self_attn = new Attention(c, o);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("AttentionBlock needs a StepContext and a KvCache: call Forward(x, step, cache)");

    /// <summary>x: [T, D], the layer input. Writes this step's keys and values into <paramref name="cache"/>.</summary>
    public AttentionOutput Forward(Tensor x, StepContext step, KvCache cache)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.forward(x), step, cache);
        var n = post_attention_layernorm.forward(h);
        return new AttentionOutput(h.MoveToOuterDisposeScope(), n.MoveToOuterDisposeScope());
    }
}
