using System.Text.Json;
using System.Text.Json.Nodes;

namespace MoeCluster.Model;

/// <summary>The fields of a Hugging Face <c>config.json</c> that decide what the model computes.
/// Shapes below use: D hidden size, H attention heads, G key/value heads, Dh head dim, E experts, k experts per token.</summary>
public sealed record ModelConfig
{
    public required Architecture Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    /// <summary>Width of dense MLP layers (and of Mixtral/OLMoE experts, which use <c>intermediate_size</c>).</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Width of one routed expert.</summary>
    public required int ExpertIntermediateSize { get; init; }
    public required int NumExperts { get; init; }
    public required int TopK { get; init; }
    /// <summary>Renormalise the k selected routing weights to sum to 1 (always true for Mixtral).</summary>
    public required bool NormTopKProb { get; init; }
    /// <summary>Qwen2-MoE shared expert width; 0 when the model has none.</summary>
    public int SharedExpertIntermediateSize { get; init; }
    public int DecoderSparseStep { get; init; } = 1;
    public IReadOnlyList<int> MlpOnlyLayers { get; init; } = [];
    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    /// <summary>OLMoE: clamp q, k and v to [-c, c] after projection.</summary>
    public double? ClipQkv { get; init; }
    /// <summary>Mixtral: attend only to the last W positions when set.</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>rope_scaling (yarn), or null for plain rotary frequencies.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Dtype the checkpoint was saved in (<c>torch_dtype</c>), informational.</summary>
    public string? TorchDtype { get; init; }

    public bool HasSharedExpert => SharedExpertIntermediateSize > 0;

    /// <summary>Whether layer <paramref name="layer"/> is a MoE layer (else a dense MLP), following each architecture's rule.</summary>
    public bool IsMoeLayer(int layer) => Architecture switch
    {
        Architecture.Qwen2Moe or Architecture.Qwen3Moe =>
            NumExperts > 0 && !MlpOnlyLayers.Contains(layer) && (layer + 1) % DecoderSparseStep == 0,
        _ => true,
    };

    public IEnumerable<int> MoeLayers => Enumerable.Range(0, NumLayers).Where(IsMoeLayer);

    public static ModelConfig Load(string modelDirectory)
    {
        var path = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(path)) throw new ModelConfigException($"{path}: not found; a model directory needs a Hugging Face config.json");
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ModelConfigException($"{path}: not a JSON object"); }
        catch (JsonException e) { throw new ModelConfigException($"{path}: invalid JSON ({e.Message})"); }
        return Parse(json, path);
    }

    public static ModelConfig Parse(JsonObject json, string source = "config.json")
    {
        var reader = new ConfigReader(json, source);
        var archName = (json["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>()
                       ?? throw new ModelConfigException($"{source}: missing 'architectures'; supported: {string.Join(", ", Architectures.ByHuggingFaceName.Keys)}");
        if (!Architectures.ByHuggingFaceName.TryGetValue(archName, out var arch))
            throw new ModelConfigException($"{source}: architecture '{archName}' is not supported; supported: {string.Join(", ", Architectures.ByHuggingFaceName.Keys)}");

        var defaults = ConfigDefaults.For(arch);
        var (ropeScaling, ropeTheta) = ReadRope(json, source, reader.Double("rope_theta", defaults.RopeTheta));
        if (reader.Bool("use_sliding_window", false) && arch != Architecture.Mixtral)
            throw new ModelConfigException($"{source}: use_sliding_window=true is not supported for {archName}; supported: false");
        if (arch == Architecture.Olmoe && reader.Bool("attention_bias", false))
            throw new ModelConfigException($"{source}: attention_bias=true is not supported for {archName}; supported: false");
        var act = reader.String("hidden_act", "silu");
        if (act != "silu") throw new ModelConfigException($"{source}: hidden_act '{act}' is not supported; supported: silu");

        // A key config.json leaves out takes the value transformers' configuration class gives it.
        int hidden = reader.OptionalInt("hidden_size") ?? defaults.HiddenSize;
        int heads = reader.OptionalInt("num_attention_heads") ?? defaults.NumHeads;
        int intermediate = reader.OptionalInt("intermediate_size") ?? defaults.IntermediateSize;
        int experts = (arch == Architecture.Mixtral ? reader.OptionalInt("num_local_experts") : reader.OptionalInt("num_experts")) ?? defaults.NumExperts;
        int headDim = reader.OptionalInt("head_dim") ?? hidden / heads;
        int kvHeads = reader.OptionalInt("num_key_value_heads") ?? defaults.NumKvHeads ?? heads;
        if (heads % kvHeads != 0) throw new ModelConfigException($"{source}: num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kvHeads})");
        int topK = reader.OptionalInt("num_experts_per_tok") ?? defaults.TopK;
        if (topK < 1 || topK > experts) throw new ModelConfigException($"{source}: num_experts_per_tok ({topK}) must be between 1 and the number of experts ({experts})");

        return new ModelConfig
        {
            Architecture = arch,
            VocabSize = reader.OptionalInt("vocab_size") ?? defaults.VocabSize,
            HiddenSize = hidden,
            NumLayers = reader.OptionalInt("num_hidden_layers") ?? defaults.NumLayers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            IntermediateSize = intermediate,
            ExpertIntermediateSize = arch is Architecture.Qwen2Moe or Architecture.Qwen3Moe ? reader.OptionalInt("moe_intermediate_size") ?? defaults.MoeIntermediateSize : intermediate,
            NumExperts = experts,
            TopK = topK,
            // Mixtral always renormalises; the others only when config.json says so (transformers' default is false).
            NormTopKProb = arch == Architecture.Mixtral || reader.Bool("norm_topk_prob", defaults.NormTopKProb),
            SharedExpertIntermediateSize = arch == Architecture.Qwen2Moe ? reader.OptionalInt("shared_expert_intermediate_size") ?? defaults.SharedExpertIntermediateSize : 0,
            DecoderSparseStep = arch is Architecture.Qwen2Moe or Architecture.Qwen3Moe ? reader.OptionalInt("decoder_sparse_step") ?? 1 : 1,
            MlpOnlyLayers = reader.IntList("mlp_only_layers"),
            RmsNormEps = reader.Double("rms_norm_eps", defaults.RmsNormEps),
            RopeTheta = ropeTheta,
            RopeScaling = ropeScaling,
            MaxPositionEmbeddings = reader.OptionalInt("max_position_embeddings") ?? defaults.MaxPositionEmbeddings,
            TieWordEmbeddings = reader.Bool("tie_word_embeddings", false),
            // Qwen2-MoE: q, k and v carry a bias unless qkv_bias says otherwise.
            AttentionBias = arch == Architecture.Qwen2Moe ? reader.Bool("qkv_bias", true) : reader.Bool("attention_bias", false),
            ClipQkv = arch == Architecture.Olmoe ? reader.OptionalDouble("clip_qkv") : null,
            SlidingWindow = arch == Architecture.Mixtral ? reader.OptionalInt("sliding_window") : null,
            BosTokenId = json.ContainsKey("bos_token_id") ? reader.OptionalInt("bos_token_id") : defaults.BosTokenId,
            EosTokenIds = json.ContainsKey("eos_token_id") ? reader.IntList("eos_token_id") : defaults.EosTokenId is int eos ? [eos] : [],
            TorchDtype = json["torch_dtype"]?.GetValue<string>() ?? json["dtype"]?.GetValue<string>(),
        };
    }

    /// <summary>rope_scaling (transformers 4) or rope_parameters (transformers 5, which also carries rope_theta).</summary>
    static (RopeScaling?, double) ReadRope(JsonObject json, string source, double theta)
    {
        string key = json["rope_scaling"] is JsonObject ? "rope_scaling" : "rope_parameters";
        if (json[key] is not JsonObject scaling) return (null, theta);
        var reader = new ConfigReader(scaling, $"{source} {key}");
        theta = reader.Double("rope_theta", theta);
        var type = (scaling["rope_type"] ?? scaling["type"])?.GetValue<string>() ?? "?";
        if (!RopeScaling.SupportedTypes.Contains(type))
            throw new ModelConfigException($"{source}: {key} type '{type}' is not supported; supported: none (null) or {string.Join(", ", RopeScaling.SupportedTypes)}");
        if (type == "default") return (null, theta);
        return (new RopeScaling
        {
            Type = type,
            Factor = reader.OptionalDouble("factor"),
            AttentionFactor = reader.OptionalDouble("attention_factor"),
            BetaFast = reader.OptionalDouble("beta_fast"),
            BetaSlow = reader.OptionalDouble("beta_slow"),
            Mscale = reader.OptionalDouble("mscale"),
            MscaleAllDim = reader.OptionalDouble("mscale_all_dim"),
            OriginalMaxPositionEmbeddings = reader.OptionalInt("original_max_position_embeddings"),
            Truncate = reader.Bool("truncate", true),
        }, theta);
    }

    /// <summary>Writes this config in Hugging Face form (used by tests and the trainer to produce real checkpoints).</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture.HuggingFaceName()),
            ["model_type"] = Architecture switch
            {
                Architecture.Mixtral => "mixtral", Architecture.Qwen2Moe => "qwen2_moe",
                Architecture.Qwen3Moe => "qwen3_moe", _ => "olmoe",
            },
            ["vocab_size"] = VocabSize, ["hidden_size"] = HiddenSize, ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads, ["num_key_value_heads"] = NumKvHeads, ["head_dim"] = HeadDim,
            ["intermediate_size"] = IntermediateSize, ["num_experts_per_tok"] = TopK,
            ["rms_norm_eps"] = RmsNormEps, ["rope_theta"] = RopeTheta, ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings, ["hidden_act"] = "silu", ["rope_scaling"] = RopeScalingJson(),
            ["torch_dtype"] = TorchDtype ?? "float32",
        };
        if (Architecture == Architecture.Mixtral) { o["num_local_experts"] = NumExperts; o["sliding_window"] = SlidingWindow; }
        else
        {
            o["num_experts"] = NumExperts;
            o["norm_topk_prob"] = NormTopKProb;
        }
        if (Architecture is Architecture.Qwen2Moe or Architecture.Qwen3Moe)
        {
            o["moe_intermediate_size"] = ExpertIntermediateSize;
            o["decoder_sparse_step"] = DecoderSparseStep;
            o["mlp_only_layers"] = new JsonArray(MlpOnlyLayers.Select(l => (JsonNode)l).ToArray());
            o["use_sliding_window"] = false;
        }
        if (Architecture == Architecture.Qwen2Moe) { o["shared_expert_intermediate_size"] = SharedExpertIntermediateSize; o["qkv_bias"] = AttentionBias; }
        if (Architecture == Architecture.Qwen3Moe) o["attention_bias"] = AttentionBias;
        if (Architecture == Architecture.Olmoe) { o["clip_qkv"] = ClipQkv; o["attention_bias"] = false; }
        if (BosTokenId is int bos) o["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(e => (JsonNode)e).ToArray());
        return o;
    }

    JsonObject? RopeScalingJson()
    {
        if (RopeScaling is not { } r) return null;
        var o = new JsonObject { ["rope_type"] = r.Type };
        if (r.Factor is double f) o["factor"] = f;
        if (r.AttentionFactor is double a) o["attention_factor"] = a;
        if (r.BetaFast is double bf) o["beta_fast"] = bf;
        if (r.BetaSlow is double bs) o["beta_slow"] = bs;
        if (r.Mscale is double m) o["mscale"] = m;
        if (r.MscaleAllDim is double md) o["mscale_all_dim"] = md;
        if (r.OriginalMaxPositionEmbeddings is int op) o["original_max_position_embeddings"] = op;
        if (!r.Truncate) o["truncate"] = false;
        return o;
    }

    public void Save(string modelDirectory)
    {
        Directory.CreateDirectory(modelDirectory);
        File.WriteAllText(Path.Combine(modelDirectory, "config.json"), ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    sealed class ConfigReader(JsonObject json, string source)
    {
        JsonNode? Node(string name) => json.TryGetPropertyValue(name, out var n) ? n : null;

        public int Int(string name) => OptionalInt(name) ?? throw new ModelConfigException($"{source}: missing required field '{name}'");

        public int? OptionalInt(string name)
        {
            var n = Node(name);
            if (n is null) return null;
            try { return n.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                if (n is JsonArray { Count: > 0 } a) return a[0]!.GetValue<int>();
                throw new ModelConfigException($"{source}: field '{name}' must be an integer, got {n.ToJsonString()}");
            }
        }

        public double Double(string name, double fallback) => OptionalDouble(name) ?? fallback;

        public double? OptionalDouble(string name)
        {
            var n = Node(name);
            if (n is null) return null;
            try { return n.GetValue<double>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            { throw new ModelConfigException($"{source}: field '{name}' must be a number, got {n.ToJsonString()}"); }
        }

        public bool Bool(string name, bool fallback)
        {
            var n = Node(name);
            if (n is null) return fallback;
            try { return n.GetValue<bool>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            { throw new ModelConfigException($"{source}: field '{name}' must be true or false, got {n.ToJsonString()}"); }
        }

        public string String(string name, string fallback) => Node(name)?.GetValue<string>() ?? fallback;

        public IReadOnlyList<int> IntList(string name) => Node(name) switch
        {
            null => [],
            JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
            var n => [n.GetValue<int>()],
        };
    }
}
