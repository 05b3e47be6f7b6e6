using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>
/// The end of the model: final RMSNorm and the LM head (or, with tied embeddings, the embedding table read as the
/// head), applied only to the rows whose next-token logits are wanted. The single-process model and the cluster's
/// gateway both end a step here. Checkpoint names: <see cref="WeightNames.FinalNorm"/> and <see cref="WeightNames.LmHead"/>
/// (load with <see cref="WeightNames.HeadTensor"/> as the name map).
/// Legend: T tokens, S sequences, D hidden, V vocabulary.
/// </summary>
public sealed class OutputHead : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm norm;
    /// <summary>Null when the checkpoint ties the head to the embedding table.</summary>
    public readonly Linear? lm_head;
    readonly Embedding? tied;

    /// <param name="tiedTo">The embedding whose table is the head when <c>tie_word_embeddings</c> is set.</param>
    public OutputHead(ModelConfig c, ModuleOptions o, Embedding tiedTo) : base(nameof(OutputHead))
    {
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, o);
        if (!c.TieWordEmbeddings) lm_head = new Linear(c.HiddenSize, c.VocabSize, false, o);
        RegisterComponents();
        if (c.TieWordEmbeddings) tied = tiedTo;   // after registering: the table belongs to the embedding, not to the head
    }

    /// <summary>hidden [S, D] → logits [S, V] in float32.</summary>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var n = norm.forward(hidden);
        var logits = lm_head is not null ? lm_head.forward(n) : nn.functional.linear(n, tied!.weight);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Next-token logits of each segment of <paramref name="layout"/>: hidden [T, D] → [S, V] float32,
    /// computed from each segment's last token only.</summary>
    public Tensor Logits(Tensor hidden, StepLayout layout)
    {
        using var scope = NewDisposeScope();
        var last = layout.TokenCount == layout.Segments.Count ? hidden
            : hidden.index_select(0, tensor(layout.LastTokenIndices(), ScalarType.Int64, hidden.device));
        return forward(last).MoveToOuterDisposeScope();
    }
}
