namespace MoeCluster.Model;

/// <summary>The Hugging Face MoE architectures whose computation we reproduce exactly.</summary>
public enum Architecture
{
    /// <summary><c>MixtralForCausalLM</c>: softmax over all experts, top-k, renormalise the k weights; no shared expert.</summary>
    Mixtral,
    /// <summary><c>Qwen2MoeForCausalLM</c>: qkv bias, optional top-k renormalisation, a shared expert scaled by a sigmoid gate, dense layers by <c>decoder_sparse_step</c>/<c>mlp_only_layers</c>.</summary>
    Qwen2Moe,
    /// <summary><c>Qwen3MoeForCausalLM</c>: per-head RMSNorm on q and k before rotary.</summary>
    Qwen3Moe,
    /// <summary><c>OlmoeForCausalLM</c>: RMSNorm over the whole q and k projections, optional <c>clip_qkv</c>.</summary>
    Olmoe,
}

public static class Architectures
{
    public static readonly IReadOnlyDictionary<string, Architecture> ByHuggingFaceName = new Dictionary<string, Architecture>
    {
        ["MixtralForCausalLM"] = Architecture.Mixtral,
        ["Qwen2MoeForCausalLM"] = Architecture.Qwen2Moe,
        ["Qwen3MoeForCausalLM"] = Architecture.Qwen3Moe,
        ["OlmoeForCausalLM"] = Architecture.Olmoe,
    };

    public static string HuggingFaceName(this Architecture a) => ByHuggingFaceName.First(p => p.Value == a).Key;
}
