using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Pre-norm transformer block: h = x + Attn(norm₁(x)); out = h + FFN(norm₂(h)), where FFN is a
/// <see cref="MoeBlock"/> or, for Qwen's dense layers, one <see cref="ExpertMlp"/>.</summary>
public sealed class DecoderLayer : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm input_layernorm, post_attention_layernorm;
    public readonly Attention self_attn;
    public MoeBlock? Moe { get; }
    public ExpertMlp? DenseMlp { get; }
    public int Index { get; }

    public DecoderLayer(ModelConfig c, int index, ModuleOptions o) : base(nameof(DecoderLayer))
    {
        Index = index;
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        self_attn = new Attention(c, o);
        RegisterComponents();
        var ffnName = c.Architecture == Architecture.Mixtral ? "block_sparse_moe" : "mlp";
        if (c.IsMoeLayer(index)) register_module(ffnName, Moe = new MoeBlock(c, o));
        else register_module(ffnName, DenseMlp = new ExpertMlp(c.HiddenSize, c.IntermediateSize, false, o));
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("DecoderLayer needs a StepLayout and a KvCache");

    /// <summary>The attention half: x [T, D] → h = x + Attn(norm₁(x)).</summary>
    public Tensor AttentionResidual(Tensor x, StepLayout layout, KvCache cache, RotaryEmbedding rotary)
    {
        using var scope = NewDisposeScope();
        return (x + self_attn.Forward(input_layernorm.forward(x), layout, cache, rotary)).MoveToOuterDisposeScope();
    }

    public Tensor Forward(Tensor x, StepLayout layout, KvCache cache, RotaryEmbedding rotary, long[]? tokensPerExpert = null)
    {
        using var scope = NewDisposeScope();
        var h = AttentionResidual(x, layout, cache, rotary);
        var n = post_attention_layernorm.forward(h);
        var ffn = Moe is not null ? Moe.Forward(n, tokensPerExpert) : DenseMlp!.forward(n);
        return (h + ffn).MoveToOuterDisposeScope();
    }
}
