namespace MoeCluster.Model;

/// <summary>Checkpoint tensor names of each architecture, so a module can be loaded by name alone
/// (one expert on one node reads exactly its three tensors).</summary>
public sealed class WeightNames(Architecture architecture)
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    /// <summary>Prefix of the <c>Embedding</c> block's parameters.</summary>
    public const string EmbeddingPrefix = "model.embed_tokens.";

    /// <summary>Checkpoint name of an <c>OutputHead</c> parameter ("norm.weight" → <see cref="FinalNorm"/>, "lm_head.weight"
    /// → <see cref="LmHead"/>): the head's two tensors live under different prefixes.</summary>
    public static string HeadTensor(string parameter) => parameter switch
    {
        "norm.weight" => FinalNorm,
        "lm_head.weight" => LmHead,
        _ => throw new ArgumentException($"'{parameter}' is not a parameter of the output head"),
    };

    static string L(int layer) => $"model.layers.{layer}";

    public string InputNorm(int layer) => $"{L(layer)}.input_layernorm.weight";
    public string PostAttentionNorm(int layer) => $"{L(layer)}.post_attention_layernorm.weight";
    public string Attention(int layer, string proj) => $"{L(layer)}.self_attn.{proj}";

    string MoePrefix(int layer) => architecture == Architecture.Mixtral ? $"{L(layer)}.block_sparse_moe" : $"{L(layer)}.mlp";

    /// <summary>Prefix of one routed expert's parameters ("…experts.{e}."), as an <c>ExpertMlp</c> names them.</summary>
    public string ExpertPrefix(int layer, int expert) => $"{MoePrefix(layer)}.experts.{expert}.";

    /// <summary>Prefix of a layer's feed-forward block (MoE or dense): "…block_sparse_moe." or "…mlp.".</summary>
    public string FeedForwardPrefix(int layer) => $"{MoePrefix(layer)}.";

    /// <summary>Prefix of a layer's <c>AttentionBlock</c> (input norm, self_attn, post-attention norm): "model.layers.{l}.".</summary>
    public string LayerPrefix(int layer) => $"{L(layer)}.";

    public string RouterGate(int layer) => $"{MoePrefix(layer)}.gate.weight";

    /// <summary>(gate, up, down) projections of one routed expert. Mixtral calls them w1, w3, w2.</summary>
    public (string Gate, string Up, string Down) Expert(int layer, int expert)
    {
        var p = $"{MoePrefix(layer)}.experts.{expert}";
        return architecture == Architecture.Mixtral
            ? ($"{p}.w1.weight", $"{p}.w3.weight", $"{p}.w2.weight")
            : ($"{p}.gate_proj.weight", $"{p}.up_proj.weight", $"{p}.down_proj.weight");
    }

    public (string Gate, string Up, string Down) SharedExpert(int layer)
    {
        var p = $"{L(layer)}.mlp.shared_expert";
        return ($"{p}.gate_proj.weight", $"{p}.up_proj.weight", $"{p}.down_proj.weight");
    }

    public string SharedExpertGate(int layer) => $"{L(layer)}.mlp.shared_expert_gate.weight";

    /// <summary>Dense (non-MoE) MLP of Qwen2/3-MoE layers listed in mlp_only_layers or skipped by decoder_sparse_step.</summary>
    public (string Gate, string Up, string Down) DenseMlp(int layer)
    {
        var p = $"{L(layer)}.mlp";
        return ($"{p}.gate_proj.weight", $"{p}.up_proj.weight", $"{p}.down_proj.weight");
    }
}
