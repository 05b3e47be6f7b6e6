using static TorchSharp.torch;

namespace MoeCluster.Model.Generation;

/// <summary>One sequence's row of a step's logits, with everything its logits processors need.</summary>
public sealed record SamplingRow(
    int Row,
    SamplingOptions Options,
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> Generated,
    IReadOnlyList<int> StopTokenIds,
    Random Random,
    int? Logprobs = null,
    bool[]? Allowed = null);

/// <summary>A token with its log-probability under the model, its rank (1 = most likely) and the most likely
/// alternatives at that position, most likely first.</summary>
public sealed record TokenLogprob(int Token, float Logprob, int Rank, IReadOnlyList<(int Token, float Logprob)> Top);

/// <summary>The sampled token of a row and, when asked, its log-probability.</summary>
public readonly record struct SampledToken(int Token, TokenLogprob? Logprob);

/// <summary>
/// Samples one token for every row of a step's logits at once, each row with its own settings, as vLLM's sampler does:
/// every control is a batched tensor operation over [R, V] (R rows, V vocabulary) with per-row parameter columns, not
/// a loop over sequences. Order: logit_bias → allowed-token mask (structured output) → min_tokens → repetition,
/// frequency and presence penalties → greedy argmax, or temperature → top-k → top-p → min-p → draw. Log-probabilities
/// are those of the raw model output (vLLM's default <c>raw_logprobs</c>). Each row draws one uniform number from its
/// own <see cref="SamplingRow.Random"/> and inverts the CDF, so a seeded sequence gets the same tokens whatever else is
/// in the batch. Rows whose settings leave a processor idle cost nothing for it: each stage runs only when some row
/// needs it.
/// </summary>
public static class BatchSampler
{
    public const int MaxTopLogprobs = 20;

    /// <summary>Samples a token for each of <paramref name="rows"/> from <paramref name="logits"/> [N, V] (float32, any device).</summary>
    public static SampledToken[] Sample(Tensor logits, IReadOnlyList<SamplingRow> rows)
    {
        if (rows.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = logits.device;
        int v = (int)logits.shape[1];
        int r = rows.Count;
        var x = logits.index_select(0, tensor(rows.Select(o => (long)o.Row).ToArray(), ScalarType.Int64, device)).to(ScalarType.Float32);
        var raw = rows.Any(o => o.Logprobs is not null) ? x.log_softmax(-1) : null;

        x = ApplyLogitBias(x, rows, v);
        x = ApplyMasks(x, rows, v);
        if (rows.Any(o => o.Options.HasPenalties)) x = ApplyPenalties(x, rows, v);

        var greedy = tensor(rows.Select(o => o.Options.Greedy).ToArray(), device: device);
        var argmax = x.argmax(-1);
        long[] tokens;
        if (rows.All(o => o.Options.Greedy)) tokens = argmax.cpu().data<long>().ToArray();
        else
        {
            var temperature = Column(rows.Select(o => o.Options.Greedy ? 1.0 : o.Options.Temperature), device);
            x = x / temperature;
            if (rows.Any(o => !o.Options.Greedy && (o.Options.TopK > 0 && o.Options.TopK < v || o.Options.TopP < 1))) x = ApplyTopKTopP(x, rows, v);
            if (rows.Any(o => !o.Options.Greedy && o.Options.MinP > 0))
            {
                var probs = x.softmax(-1);
                var threshold = Column(rows.Select(o => o.Options.Greedy ? 0 : o.Options.MinP), device) * probs.max(-1, keepdim: true).values;
                x = x.masked_fill(probs < threshold, float.NegativeInfinity);
            }
            // One uniform in (0, 1] per row, from the row's own generator; the first token whose CDF reaches it wins.
            var u = Column(rows.Select(o => o.Options.Greedy ? 1.0 : 1.0 - o.Random.NextDouble()), device, ScalarType.Float64);
            var cdf = x.softmax(-1).to(ScalarType.Float64).cumsum(-1);
            var drawn = (cdf < u * cdf.narrow(-1, v - 1, 1)).sum(-1).clamp_max(v - 1);
            tokens = where(greedy, argmax, drawn).cpu().data<long>().ToArray();
        }

        var logprobs = raw is null ? null : Logprobs(raw, tokens, rows.Select(o => o.Logprobs).ToArray());
        return Enumerable.Range(0, r).Select(i => new SampledToken((int)tokens[i], logprobs?[i])).ToArray();
    }

    /// <summary>Log-probabilities of given next tokens: row <paramref name="rowIndices"/>[i] of <paramref name="logits"/>
    /// scores <paramref name="targets"/>[i], with <paramref name="top"/> alternatives (prompt logprobs for echo).</summary>
    public static TokenLogprob[] Score(Tensor logits, IReadOnlyList<int> rowIndices, IReadOnlyList<int> targets, int top)
    {
        if (rowIndices.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = logits.index_select(0, tensor(rowIndices.Select(i => (long)i).ToArray(), ScalarType.Int64, logits.device)).to(ScalarType.Float32);
        return Logprobs(x.log_softmax(-1), targets.Select(t => (long)t).ToArray(), Enumerable.Repeat<int?>(top, rowIndices.Count).ToArray())
            .Select(l => l!).ToArray();
    }

    /// <summary>Chosen tokens' log-probabilities, ranks and top alternatives from log-probabilities [R, V].</summary>
    static TokenLogprob?[] Logprobs(Tensor logprobs, long[] tokens, int?[] top)
    {
        var device = logprobs.device;
        var chosen = logprobs.gather(1, tensor(tokens, ScalarType.Int64, device).unsqueeze(1));                   // [R, 1]
        var ranks = (logprobs > chosen).sum(-1).add(1).cpu().data<long>().ToArray();
        var values = chosen.squeeze(1).cpu().data<float>().ToArray();
        int k = Math.Min(top.Max(t => t ?? 0), (int)logprobs.shape[1]);
        float[] topValues = [];
        long[] topIds = [];
        if (k > 0)
        {
            var (tv, ti) = logprobs.topk(k, dim: -1, largest: true, sorted: true);
            topValues = tv.cpu().data<float>().ToArray();
            topIds = ti.cpu().data<long>().ToArray();
        }
        var result = new TokenLogprob?[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            if (top[i] is not int n) continue;
            var alternatives = Enumerable.Range(0, Math.Min(n, k)).Select(j => ((int)topIds[i * k + j], topValues[i * k + j])).ToArray();
            result[i] = new TokenLogprob((int)tokens[i], values[i], (int)ranks[i], alternatives);
        }
        return result;
    }

    static Tensor ApplyLogitBias(Tensor x, IReadOnlyList<SamplingRow> rows, int v)
    {
        var index = new List<long>();
        var bias = new List<float>();
        for (int i = 0; i < rows.Count; i++)
            foreach (var (token, b) in rows[i].Options.LogitBias)
            {
                index.Add((long)i * v + token);
                bias.Add(b);
            }
        if (index.Count == 0) return x;
        return x.flatten().index_add(0, tensor(index.ToArray(), ScalarType.Int64, x.device), tensor(bias.ToArray(), device: x.device), 1).view(x.shape);
    }

    /// <summary>Tokens a row may not take: those outside its allowed set, and its stop tokens before min_tokens.</summary>
    static Tensor ApplyMasks(Tensor x, IReadOnlyList<SamplingRow> rows, int v)
    {
        if (rows.Any(o => o.Allowed is not null))
        {
            var allowed = new bool[rows.Count * v];
            for (int i = 0; i < rows.Count; i++)
                if (rows[i].Allowed is { } a) a.AsSpan(0, v).CopyTo(allowed.AsSpan(i * v, v));
                else allowed.AsSpan(i * v, v).Fill(true);
            x = x.masked_fill(tensor(allowed, device: x.device).view(rows.Count, v).logical_not(), float.NegativeInfinity);
        }
        var banned = new List<long>();
        for (int i = 0; i < rows.Count; i++)
            if (rows[i].Generated.Count < rows[i].Options.MinTokens)
                foreach (int t in rows[i].StopTokenIds)
                    if ((uint)t < (uint)v) banned.Add((long)i * v + t);
        if (banned.Count == 0) return x;
        var flat = x.flatten().clone();
        flat.index_fill_(0, tensor(banned.ToArray(), ScalarType.Int64, x.device), float.NegativeInfinity);
        return flat.view(x.shape);
    }

    /// <summary>vLLM's penalties: repetition over prompt and output tokens (divide positive logits, multiply negative
    /// ones), then frequency (× count in the output) and presence (once if in the output).</summary>
    static Tensor ApplyPenalties(Tensor x, IReadOnlyList<SamplingRow> rows, int v)
    {
        var device = x.device;
        var counts = TokenCounts(rows.Select(o => o.Generated).ToArray(), v, device);                   // [R, V]
        var inOutput = counts > 0;
        if (rows.Any(o => o.Options.RepetitionPenalty != 1))
        {
            var seen = inOutput.logical_or(TokenCounts(rows.Select(o => o.Options.RepetitionPenalty != 1 ? o.PromptTokens : []).ToArray(), v, device) > 0);
            var penalty = Column(rows.Select(o => o.Options.RepetitionPenalty), device);
            x = where(seen, where(x > 0, x / penalty, x * penalty), x);
        }
        var frequency = Column(rows.Select(o => o.Options.FrequencyPenalty), device);
        var presence = Column(rows.Select(o => o.Options.PresencePenalty), device);
        return x - frequency * counts - presence * inOutput.to(ScalarType.Float32);
    }

    /// <summary>How often each token occurs in each row's list: [R, V] float32 (a scatter-add over padded ids; the
    /// padding goes to an extra column that is cut off).</summary>
    static Tensor TokenCounts(IReadOnlyList<int>[] lists, int v, Device device)
    {
        int width = Math.Max(1, lists.Max(l => l.Count));
        var ids = new long[lists.Length * width];
        Array.Fill(ids, v);
        for (int i = 0; i < lists.Length; i++)
            for (int j = 0; j < lists[i].Count; j++) ids[i * width + j] = lists[i][j];
        var index = tensor(ids, ScalarType.Int64, device).view(lists.Length, width);
        return zeros(lists.Length, v + 1, device: device).scatter_add(1, index, ones(lists.Length, width, device: device))[.., ..v];
    }

    /// <summary>Top-k then top-p (nucleus) per row on temperature-scaled logits, on one descending sort (ties keep the
    /// lower token id first, so the kept set is deterministic). A token is dropped by top-p when the probability mass
    /// before it already reaches p; the most likely token is always kept.</summary>
    static Tensor ApplyTopKTopP(Tensor x, IReadOnlyList<SamplingRow> rows, int v)
    {
        var device = x.device;
        var (sorted, order) = x.sort(dim: -1, descending: true, stable: true);
        var rank = arange(v, ScalarType.Int64, device).unsqueeze(0);
        var k = tensor(rows.Select(o => (long)(o.Options.Greedy || o.Options.TopK <= 0 ? v : Math.Min(o.Options.TopK, v))).ToArray(), ScalarType.Int64, device).unsqueeze(1);
        sorted = sorted.masked_fill(rank >= k, float.NegativeInfinity);
        var p = Column(rows.Select(o => o.Options.Greedy ? 1.0 : o.Options.TopP), device, ScalarType.Float64);
        var probs = sorted.softmax(-1).to(ScalarType.Float64);
        var before = probs.cumsum(-1) - probs;
        sorted = sorted.masked_fill(before >= p, float.NegativeInfinity);
        return full_like(x, float.NegativeInfinity).scatter(1, order, sorted);
    }

    static Tensor Column(IEnumerable<double> values, Device device, ScalarType type = ScalarType.Float32) =>
        tensor(values.ToArray(), ScalarType.Float64, device).to(type).unsqueeze(1);
}
