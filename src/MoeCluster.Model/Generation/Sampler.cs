namespace MoeCluster.Model.Generation;

/// <summary>Chooses the next token from one row of float32 logits. One sampler per sequence, so a seeded request
/// draws the same numbers whatever else is in the batch.</summary>
public sealed class Sampler(SamplingOptions options)
{
    readonly Random random = options.Seed is long s ? new Random(unchecked((int)(s ^ (s >> 32)))) : new Random();

    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Greedy) return ArgMax(logits);
        int v = logits.Length;
        var order = new int[v];
        var scaled = new double[v];
        for (int i = 0; i < v; i++) { order[i] = i; scaled[i] = logits[i] / options.Temperature; }
        // Descending by logit, ties by index, so the kept set is deterministic.
        Array.Sort(order, (a, b) => scaled[b].CompareTo(scaled[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, v) : v;
        double max = scaled[order[0]], total = 0;
        var probs = new double[keep];
        for (int i = 0; i < keep; i++) total += probs[i] = Math.Exp(scaled[order[i]] - max);
        if (options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / total;
                if (cumulative >= options.TopP) { keep = i + 1; break; }
            }
            total = 0;
            for (int i = 0; i < keep; i++) total += probs[i];
        }
        double u = random.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            u -= probs[i];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>First index of the maximum, as torch.argmax returns.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
