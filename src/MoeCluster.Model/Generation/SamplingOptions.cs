namespace MoeCluster.Model.Generation;

/// <summary>How the next token is chosen, with vLLM's meaning for each control. Order per step: logit_bias, min_tokens
/// (stop tokens masked), repetition penalty (prompt and output tokens), frequency and presence penalties (output
/// tokens); then greedy takes the argmax, else temperature → top-k → top-p → min-p → sample. A temperature below
/// <see cref="GreedyBelow"/> is greedy, as in vLLM, so a tiny temperature cannot overflow the scaled logits. A seed
/// makes a request's draws reproducible whatever else is in the batch.</summary>
public sealed record SamplingOptions
{
    /// <summary>vLLM's _SAMPLING_EPS: temperatures below it decode greedily.</summary>
    public const double GreedyBelow = 1e-5;

    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most likely tokens; 0 = all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p; 1 = all.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Drop tokens whose probability is below min_p × the most likely token's; 0 = off.</summary>
    public double MinP { get; init; }
    public long? Seed { get; init; }
    /// <summary>OpenAI's: subtracted once per earlier occurrence of the token in the output, in [-2, 2].</summary>
    public double FrequencyPenalty { get; init; }
    /// <summary>OpenAI's: subtracted once if the token occurs in the output at all, in [-2, 2].</summary>
    public double PresencePenalty { get; init; }
    /// <summary>vLLM's (CTRL's): logits of tokens seen in the prompt or output are divided by it when positive,
    /// multiplied when negative; 1 = off.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Added to the logit of each token id, in [-100, 100] (OpenAI's logit_bias).</summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = new Dictionary<int, float>();
    /// <summary>Stop tokens are masked until this many tokens were generated (vLLM's min_tokens).</summary>
    public int MinTokens { get; init; }

    public bool Greedy => Temperature < GreedyBelow;

    /// <summary>Whether any logits processor beyond temperature/top-k/top-p/min-p is active.</summary>
    public bool HasPenalties => FrequencyPenalty != 0 || PresencePenalty != 0 || RepetitionPenalty != 1;

    public static SamplingOptions GreedyDecoding { get; } = new() { Temperature = 0 };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> whose ParamName is the OpenAI field name.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0 && Temperature <= 100)) throw new ArgumentOutOfRangeException("temperature", Temperature, "temperature must be in [0, 100]");
        if (TopK < 0) throw new ArgumentOutOfRangeException("top_k", TopK, "top_k must be >= 0 (0 = off)");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException("top_p", TopP, "top_p must be in (0, 1]");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentOutOfRangeException("min_p", MinP, "min_p must be in [0, 1]");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw new ArgumentOutOfRangeException("frequency_penalty", FrequencyPenalty, "frequency_penalty must be in [-2, 2]");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw new ArgumentOutOfRangeException("presence_penalty", PresencePenalty, "presence_penalty must be in [-2, 2]");
        if (!(RepetitionPenalty > 0 && RepetitionPenalty <= 10)) throw new ArgumentOutOfRangeException("repetition_penalty", RepetitionPenalty, "repetition_penalty must be in (0, 10]");
        if (MinTokens < 0) throw new ArgumentOutOfRangeException("min_tokens", MinTokens, "min_tokens must be >= 0");
        foreach (var (token, bias) in LogitBias)
        {
            if (token < 0) throw new ArgumentOutOfRangeException("logit_bias", token, $"logit_bias token id {token} is negative");
            if (!(bias >= -100 && bias <= 100)) throw new ArgumentOutOfRangeException("logit_bias", bias, $"logit_bias for token {token} must be in [-100, 100], got {bias}");
        }
    }
}
