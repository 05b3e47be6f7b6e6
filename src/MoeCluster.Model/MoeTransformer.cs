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

    public MoeBackbone(ModelConfig c, ModuleOptions o) : base(nameof(MoeBackbone))
    {
        embed_tokens = new Layers.Embedding(c.VocabSize, c.HiddenSize, o);
        layers = nn.ModuleList(Enumerable.Range(0, c.NumLayers).Select(i => new DecoderLayer(c, i, o)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new InvalidOperationException("use MoeTransformer.Forward");
}

/// <summary>A whole MoE causal language model in one process (the model core). Parameter names equal checkpoint names.</summary>
public sealed class MoeTransformer : nn.Module<Tensor, Tensor>
{
    public readonly MoeBackbone model;
    public readonly Layers.Linear? lm_head;
    public ModelConfig Config { get; }
    public ModuleOptions Options { get; }
    public RotaryEmbedding Rotary { get; }

    public MoeTransformer(ModelConfig c, ModuleOptions o, int maxPositions = 0) : base(nameof(MoeTransformer))
    {
        Config = c;
        Options = o;
        model = new MoeBackbone(c, o);
        if (!c.TieWordEmbeddings) lm_head = new Layers.Linear(c.HiddenSize, c.VocabSize, false, o);
        Rotary = new RotaryEmbedding(c.HeadDim, maxPositions > 0 ? maxPositions : Math.Min(c.MaxPositionEmbeddings, 1 << 15), c.RopeTheta, o);
        RegisterComponents();
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

    /// <summary>Final norm + LM head on the rows the caller needs: hidden [S, D] → logits [S, V] (float32).</summary>
    public Tensor Head(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var n = model.norm.forward(hidden);
        var logits = lm_head is not null ? lm_head.forward(n) : nn.functional.linear(n, model.embed_tokens.weight);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>One step: tokens [T] laid out by <paramref name="layout"/> → next-token logits [R, V] at the token indices
    /// <paramref name="logitRows"/> (default: the last token of each segment, R = S). <paramref name="tokensPerExpert"/>
    /// ([layer][expert]) accumulates routing counts when given.</summary>
    public Tensor Forward(Tensor tokens, StepLayout layout, IReadOnlyList<KvCache> caches, long[][]? tokensPerExpert = null, long[]? logitRows = null)
    {
        if (tokens.shape.Length != 1 || tokens.shape[0] != layout.TokenCount)
            throw new ArgumentException($"tokens must be [{layout.TokenCount}] for this layout, got [{string.Join(", ", tokens.shape)}]");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var x = Embed(tokens);
        for (int l = 0; l < Config.NumLayers; l++)
            x = model.layers[l].Forward(x, layout, caches[l], Rotary, tokensPerExpert?[l]);
        var last = x.index_select(0, tensor(logitRows ?? layout.LastTokenIndices(), ScalarType.Int64, x.device));
        return Head(last).MoveToOuterDisposeScope();
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
