using MoeCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model;

/// <summary>The decoder stack under the checkpoint prefix "model.": embeddings, layers, final norm.</summary>
public sealed class MoeBackbone : nn.Module<Tensor, Tensor>
{
    public readonly Layers.Embedding embed_tokens;
    public readonly TorchSharp.Modules.ModuleList<DecoderLayer> layers;
    public readonly RmsNorm norm;

    /// <param name="norm">The final norm, owned by the model's <see cref="OutputHead"/> and registered here under its checkpoint name.</param>
    public MoeBackbone(ModelConfig c, ModuleOptions o, Layers.Embedding embedding, RmsNorm norm) : base(nameof(MoeBackbone))
    {
        embed_tokens = embedding;
        layers = nn.ModuleList(Enumerable.Range(0, c.NumLayers).Select(i => new DecoderLayer(c, i, o)).ToArray());
        this.norm = norm;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("use MoeTransformer.Forward");
}

/// <summary>A whole MoE causal language model in one process (the model core): the <see cref="Layers.Embedding"/>, one
/// <see cref="AttentionBlock"/> and feed-forward block per layer, the <see cref="OutputHead"/> — the same blocks the
/// cluster's actors host. Parameter names equal checkpoint names.</summary>
public sealed class MoeTransformer : nn.Module<Tensor, Tensor>
{
    public readonly MoeBackbone model;
    public readonly Layers.Linear? lm_head;
    public ModelConfig Config { get; }
    public ModuleOptions Options { get; }
    public RotaryEmbedding Rotary { get; }
    public OutputHead Head { get; }

    public MoeTransformer(ModelConfig c, ModuleOptions o, int maxPositions = 0) : base(nameof(MoeTransformer))
    {
        Config = c;
        Options = o;
        var embedding = new Layers.Embedding(c.VocabSize, c.HiddenSize, o);
        var head = new OutputHead(c, o, embedding);
        model = new MoeBackbone(c, o, embedding, head.norm);
        lm_head = head.lm_head;
        Rotary = new RotaryEmbedding(c.HeadDim, maxPositions > 0 ? maxPositions : Math.Min(c.MaxPositionEmbeddings, 1 << 15), c.RopeTheta, o, c.RopeScaling, c.MaxPositionEmbeddings);
        RegisterComponents();
        Head = head;   // after registering: its modules are registered above under their checkpoint names
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("use Forward(tokens, layout, caches)");

    public IReadOnlyList<DecoderLayer> Layers => model.layers.ToList();

    /// <summary>One KV cache per layer for <paramref name="slots"/> concurrent sequences of up to <paramref name="capacity"/> tokens.</summary>
    public KvCache[] CreateCaches(int slots, int capacity)
    {
        if (capacity > Rotary.MaxPositions) throw new ArgumentOutOfRangeException(nameof(capacity), $"context {capacity} exceeds the {Rotary.MaxPositions} positions this model was set up for");
        return Enumerable.Range(0, Config.NumLayers).Select(_ => new KvCache(slots, Config.NumKvHeads, capacity, Config.HeadDim, Options)).ToArray();
    }

    public Tensor Embed(Tensor tokens) => model.embed_tokens.forward(tokens);

    /// <summary>One step: tokens [T] laid out by <paramref name="layout"/> → next-token logits [R, V] at the token indices
    /// <paramref name="logitRows"/> (default: the last token of each segment, R = S). <paramref name="tokensPerExpert"/>
    /// ([layer][expert]) accumulates routing counts when given.</summary>
    public Tensor Forward(Tensor tokens, StepLayout layout, IReadOnlyList<KvCache> caches, long[][]? tokensPerExpert = null, long[]? logitRows = null)
    {
        if (tokens.dim() != 1 || tokens.size(0) != layout.TokenCount)
            throw new ArgumentException($"tokens must be [{layout.TokenCount}] for this layout, got [{string.Join(", ", tokens.shape)}]");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        using var step = StepContext.Create(layout, Rotary, Config, tokens.device);
        var x = Embed(tokens);
        for (int l = 0; l < Config.NumLayers; l++)
            x = model.layers[l].Forward(x, step, caches[l], tokensPerExpert?[l]);
        return (logitRows is null ? Head.Logits(x, layout) : Head.forward(x.index_select(0, tensor(logitRows, ScalarType.Int64, x.device)))).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Forward"/> on a scheduler's token ids.</summary>
    public Tensor ForwardTokens(IReadOnlyList<int> tokens, StepLayout layout, IReadOnlyList<KvCache> caches, long[][]? tokensPerExpert = null, long[]? logitRows = null)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(tokens.Select(t => (long)t).ToArray(), ScalarType.Int64, Options.Device);
        return Forward(ids, layout, caches, tokensPerExpert, logitRows).MoveToOuterDisposeScope();
    }

    /// <summary>Every checkpoint name this model reads (for the unexpected-tensor check).</summary>
    public IReadOnlyCollection<string> ParameterNames => named_parameters().Select(p => p.name).ToHashSet();

    /// <summary>Loads a Hugging Face checkpoint directory: config.json + safetensors (single or sharded).</summary>
    public static MoeTransformer Load(string directory, ModuleOptions o, int maxPositions = 0, Action<int, int>? progress = null)
    {
        var config = ModelConfig.Load(directory);
        var checkpoint = Checkpoints.Checkpoint.Open(directory);
        try
        {
            var source = new CheckpointWeights(checkpoint);
            var model = new MoeTransformer(config, o, maxPositions);
            try
            {
                model.LoadWeights(source, checkpoint.Names, directory, progress);
                return model;
            }
            catch { model.Dispose(); throw; }
        }
        finally { checkpoint.Dispose(); }
    }

    /// <summary>Reads every parameter from <paramref name="source"/>; rejects tensors the architecture does not use,
    /// since they mean the config and the weights disagree.</summary>
    public void LoadWeights(IWeightSource source, IEnumerable<string>? availableNames = null, string description = "checkpoint", Action<int, int>? progress = null)
    {
        var read = ModuleWeights.Load(this, "", source, Options, progress).ToHashSet();
        if (availableNames is null) return;
        var unexpected = availableNames.Where(n => !read.Contains(n) && !IgnoredOnLoad(n)).OrderBy(n => n).ToList();
        if (unexpected.Count > 0)
            throw new Checkpoints.CheckpointException(
                $"{description}: {unexpected.Count} unexpected tensor(s) for {Config.Architecture.HuggingFaceName()} with this config.json: " +
                string.Join(", ", unexpected.Take(10).Select(n => $"'{n}'")) + (unexpected.Count > 10 ? ", …" : ""));
    }

    bool IgnoredOnLoad(string name) =>
        name.EndsWith("rotary_emb.inv_freq") || (Config.TieWordEmbeddings && name == WeightNames.LmHead);

    protected override void Dispose(bool disposing)
    {
        if (disposing) Rotary.Dispose();
        base.Dispose(disposing);
    }
}
