using System.Text.Json.Nodes;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Model.Training;

namespace MoeCluster.Model.Tests.Training;

/// <summary>The model committed under models/moe-tiny-fortunes still reaches the perplexity its model card states,
/// recomputed from the committed held-out documents with the committed tokenizer and weights.</summary>
public class ShippedModelSpec
{
    static readonly string ModelDir = RepositoryFiles.Path("models", "moe-tiny-fortunes");

    [Fact]
    public void Shipped_model_reaches_its_recorded_held_out_perplexity_and_beats_the_unigram_baseline()
    {
        var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir, "eval.json")))!;
        var split = eval["held_out_split"]!;
        var subset = eval["held_out_subset"]!;
        using var model = MoeTransformer.Load(ModelDir, ModuleOptions.Cpu32);
        var tokenizer = ModelTokenizer.Load(ModelDir)!;
        int endOfText = TrainingTokenizer.EndOfTextId(tokenizer, ModelDir);

        var documents = TextDocuments.Read([Path.Combine(ModelDir, split["documents_file"]!.GetValue<string>())]);
        Assert.Equal(split["held_out_documents"]!.GetValue<int>(), documents.Count);
        var heldOut = new PackedSequences(TrainingTokenizer.Encode(tokenizer, documents), endOfText, split["sequence_length"]!.GetValue<int>());
        Assert.Equal(split["windows"]!.GetValue<int>(), heldOut.Count);

        var result = Perplexity.Evaluate(model, heldOut, subset["windows"]!.GetValue<int>());
        double recorded = subset["perplexity"]!.GetValue<double>();
        Assert.Equal(subset["tokens"]!.GetValue<long>(), result.Tokens);
        Assert.True(Math.Abs(result.Perplexity - recorded) <= 0.005 * recorded,
            $"perplexity {result.Perplexity:F4} on the first {subset["windows"]} held-out windows; model card records {recorded:F4}");
        Assert.True(result.Perplexity < 0.5 * eval["unigram_baseline"]!["perplexity"]!.GetValue<double>(),
            $"perplexity {result.Perplexity:F2} is not well below the unigram baseline {eval["unigram_baseline"]!["perplexity"]}");
    }
}
