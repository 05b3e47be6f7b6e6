using static TorchSharp.torch;

namespace MoeCluster.Model.Training;

/// <summary>Mean negative log-likelihood (nats per token) over some target tokens, and its exponential.</summary>
public sealed record PerplexityResult(double MeanLoss, long Tokens, IReadOnlyList<ExpertLoad> ExpertLoad)
{
    public double Perplexity => Math.Exp(MeanLoss);
}

/// <summary>Held-out evaluation of a model on packed windows, through <see cref="TrainingForward"/> without gradients.</summary>
public static class Perplexity
{
    /// <summary>Evaluates the first <paramref name="windows"/> windows (all when null), <paramref name="batchSize"/> at a time.</summary>
    public static PerplexityResult Evaluate(MoeTransformer model, PackedSequences data, int? windows = null, int batchSize = 16)
    {
        int count = Math.Min(windows ?? data.Count, data.Count);
        if (count == 0) throw new ArgumentException("no held-out windows to evaluate: the held-out split is shorter than one sequence; use more data or a shorter --seq-len");
        var counts = Enumerable.Range(0, model.Config.NumLayers).Select(_ => new long[model.Config.NumExperts]).ToArray();
        double totalLoss = 0;
        long tokens = 0;
        using var _ = no_grad();
        for (int start = 0; start < count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var indices = Enumerable.Range(start, Math.Min(batchSize, count - start)).ToArray();
            var (inputs, targets) = data.Batch(indices);
            using var output = TrainingForward.Run(model, inputs.to(model.Options.Device), counts);
            var sum = nn.functional.cross_entropy(output.Logits, targets.reshape(-1).to(model.Options.Device), reduction: nn.Reduction.Sum);
            totalLoss += sum.item<float>();
            tokens += targets.NumberOfElements;
        }
        return new PerplexityResult(totalLoss / tokens, tokens, ExpertLoad.FromCounts(model.Config, counts));
    }
}
