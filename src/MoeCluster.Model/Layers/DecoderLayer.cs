using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Pre-norm transformer block: the <see cref="AttentionBlock"/> (h = x + Attn(norm₁(x)), n = norm₂(h)), then
/// out = h + FFN(n), where FFN is a <see cref="MoeBlock"/> or, for Qwen's dense layers, one <see cref="ExpertMlp"/>.
/// The attention block's modules are registered here under their own checkpoint names, so this layer's parameters
/// are named exactly as in the checkpoint under "model.layers.{i}."; the cluster hosts the same two blocks apart.</summary>
public sealed class DecoderLayer : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm input_layernorm, post_attention_layernorm;
    public readonly Attention self_attn;
    public AttentionBlock Attention { get; }
    public MoeBlock? Moe { get; }
    public ExpertMlp? DenseMlp { get; }
    public int Index { get; }

    public DecoderLayer(ModelConfig c, int index, ModuleOptions o) : base(nameof(DecoderLayer))
    {
        Index = index;
        var attention = new AttentionBlock(c, o);
        input_layernorm = attention.input_layernorm;
        self_attn = attention.self_attn;
        post_attention_layernorm = attention.post_attention_layernorm;
        RegisterComponents();
        Attention = attention;   // after registering: its modules are this layer's, not a child named "Attention"
        var ffnName = c.Architecture == Architecture.Mixtral ? "block_sparse_moe" : "mlp";
        if (c.IsMoeLayer(index)) register_module(ffnName, Moe = new MoeBlock(c, o));
        else register_module(ffnName, DenseMlp = ExpertMlp.Dense(c, o));
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("DecoderLayer needs a StepContext and a KvCache");

    /// <summary>The feed-forward half: n [T, D] → FFN(n), counting tokens per expert when asked.</summary>
    public Tensor FeedForward(Tensor normed, long[]? tokensPerExpert = null) =>
        Moe is not null ? Moe.Forward(normed, tokensPerExpert) : DenseMlp!.forward(normed);

    public Tensor Forward(Tensor x, StepContext step, KvCache cache, long[]? tokensPerExpert = null)
    {
        using var scope = NewDisposeScope();
        var (h, n) = Attention.Forward(x, step, cache);
        return (h + FeedForward(n, tokensPerExpert)).MoveToOuterDisposeScope();
    }
}
