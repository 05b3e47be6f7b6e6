namespace MoeCluster.Model.Training;

/// <summary>The context-free baseline: each token's probability is its add-one-smoothed frequency in the training
/// stream. A language model that does not beat this has learnt nothing from context.</summary>
public sealed class UnigramBaseline
{
    readonly double[] logProbability;

    public UnigramBaseline(ReadOnlySpan<int> trainingStream, int vocabSize)
    {
        var counts = new long[vocabSize];
        foreach (var id in trainingStream) counts[id]++;
        double total = trainingStream.Length + vocabSize;
        logProbability = counts.Select(n => Math.Log((n + 1) / total)).ToArray();
    }

    /// <summary>Mean negative log-likelihood (nats per token) of <paramref name="targets"/>.</summary>
    public double MeanLoss(IEnumerable<int> targets)
    {
        double sum = 0;
        long n = 0;
        foreach (var id in targets) { sum -= logProbability[id]; n++; }
        if (n == 0) throw new ArgumentException("no target tokens to evaluate the unigram baseline on");
        return sum / n;
    }
}
