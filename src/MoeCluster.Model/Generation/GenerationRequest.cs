namespace MoeCluster.Model.Generation;

/// <summary>One sequence to generate. Stops at the first of: an EOS/stop token id (not included in the output),
/// <see cref="MaxTokens"/> generated tokens, or cancellation.</summary>
public sealed record GenerationRequest(string Id, IReadOnlyList<int> PromptTokens, int MaxTokens)
{
    public SamplingOptions Sampling { get; init; } = SamplingOptions.GreedyDecoding;
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Also return the float32 logits of the last prompt position (for cross-implementation checks).</summary>
    public bool ReturnPromptLogits { get; init; }
    /// <summary>Return each generated token's log-probability with this many most likely alternatives (0 to
    /// <see cref="BatchSampler.MaxTopLogprobs"/>); null = none.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Score the prompt: every prompt token after the first gets its log-probability with this many
    /// alternatives (<see cref="PromptTokensScored"/>); null = none.</summary>
    public int? PromptLogprobs { get; init; }
    /// <summary>vLLM's priority: lower values are admitted first; equal priorities keep arrival order.</summary>
    public int Priority { get; init; }
    /// <summary>Restricts the tokens this sequence may generate (structured output, forced tool calls); null = none.</summary>
    public Func<ITokenConstraint>? Constraint { get; init; }
    /// <summary>Requests with the same prompt and group (the choices of one request with n &gt; 1) share its prefill: with
    /// prefix caching on, the others wait while one prefills the prompt, then copy its KV blocks. Null = none.</summary>
    public string? PrefillGroup { get; init; }
}

public enum FinishReason { Stop, Length, Cancelled, Error }

/// <summary>What the scheduler reports after a step, in order. Token events stream; Finished ends a request.</summary>
public abstract record GenerationEvent(string RequestId);
public sealed record TokenGenerated(string RequestId, int Token, int Index, TokenLogprob? Logprob = null) : GenerationEvent(RequestId);
public sealed record PromptLogits(string RequestId, float[] Logits) : GenerationEvent(RequestId);
/// <summary>Log-probabilities of prompt tokens [<see cref="First"/>, First + Count) given the tokens before each.</summary>
public sealed record PromptTokensScored(string RequestId, int First, IReadOnlyList<TokenLogprob> Logprobs) : GenerationEvent(RequestId);
public sealed record SequenceFinished(string RequestId, FinishReason Reason, int PromptTokens, IReadOnlyList<int> Generated, string? Error = null)
    : GenerationEvent(RequestId)
{
    /// <summary>Prompt tokens whose KV cache came from the prefix cache instead of being prefilled (OpenAI's
    /// usage.prompt_tokens_details.cached_tokens).</summary>
    public int CachedPromptTokens { get; init; }
}

/// <summary>Thrown for a request that can never run (too long for the context, empty prompt, bad sampling options).</summary>
public sealed class InvalidGenerationRequestException(string field, string message) : Exception(message)
{
    public string Field { get; } = field;
}
