using System.Text;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Chat.Jinja;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

/// <summary>A request turned into token ids and a <see cref="GenerationRequest"/>, ready to run.</summary>
public sealed record PreparedCompletion(CompletionRequest Request, GenerationRequest Generation, string Id, long Created);

/// <summary>How a completion ended: its text (stop strings removed), OpenAI finish_reason and token counts.</summary>
public sealed record CompletionOutcome(string Text, string FinishReason, int PromptTokens, int CompletionTokens, IReadOnlyList<int> TokenIds);

/// <summary>Runs OpenAI completion and chat requests on the <see cref="IGenerationService"/>: tokenises (through the
/// chat template for chat), enforces the context, adds EOS ids as stop tokens, detokenises as tokens stream and applies
/// text stop strings (cancelling the request when one is hit, so its KV-cache slot is freed at once).
/// Shared by the HTTP endpoints and batch jobs.</summary>
public sealed class CompletionRunner(IGenerationService generation, ModelTokenizer? tokenizer, ChatPromptRenderer chat, ServingOptions options)
{
    public int ContextLength => options.ContextLength ?? generation.Config.MaxPositionEmbeddings;

    /// <summary>Validates the request against the served model and turns it into token ids; throws
    /// <see cref="ApiException"/> naming the field at fault.</summary>
    public PreparedCompletion Prepare(CompletionRequest r)
    {
        if (r.Model != options.ModelName)
            throw new ApiException(404, $"The model '{r.Model}' does not exist; this server serves '{options.ModelName}'", "model", "model_not_found");
        var prompt = PromptTokens(r);
        if (prompt.Count == 0) throw ApiException.BadRequest(r.PromptParam, "the prompt must contain at least one token");
        int vocab = generation.Config.VocabSize;
        if (prompt.FirstOrDefault(t => t >= vocab, -1) is var bad and >= 0)
            throw ApiException.BadRequest(r.PromptParam, $"token id {bad} is outside the vocabulary (size {vocab})");
        CheckVocabulary(r.Sampling, r.StopTokenIds, vocab);
        int context = ContextLength;
        if (prompt.Count >= context)
            throw ApiException.BadRequest(r.PromptParam, $"the prompt has {prompt.Count} tokens; the context holds {context} (prompt and completion together)", "context_length_exceeded");
        int room = context - prompt.Count;
        string maxParam = r.Kind == CompletionKind.Chat ? "max_completion_tokens" : "max_tokens";
        if (r.MaxTokens is int asked && asked > room)
            throw ApiException.BadRequest(r.Kind == CompletionKind.Chat ? maxParam : "max_tokens",
                $"max_tokens ({asked}) + the prompt ({prompt.Count} tokens) exceeds the context length {context}; at most {room} tokens can be generated", "context_length_exceeded");
        int maxTokens = r.MaxTokens ?? Math.Min(room, r.Kind == CompletionKind.Chat ? options.DefaultChatMaxTokens : options.DefaultCompletionMaxTokens);

        var stopIds = new HashSet<int>(r.StopTokenIds);
        if (!r.IgnoreEos)
        {
            stopIds.UnionWith(generation.Config.EosTokenIds);
            if (tokenizer is not null) stopIds.UnionWith(tokenizer.EosTokenIds);
        }
        string id = (r.Kind == CompletionKind.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var request = new GenerationRequest(id, prompt, maxTokens)
        {
            Sampling = r.Sampling,
            StopTokenIds = stopIds.Order().ToArray(),
        };
        return new PreparedCompletion(r, request, id, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
    }

    /// <summary>Token ids in sampling fields must exist in the served model's vocabulary.</summary>
    public static void CheckVocabulary(SamplingOptions sampling, IReadOnlyList<int> stopTokenIds, int vocab)
    {
        if (sampling.LogitBias.Keys.FirstOrDefault(t => t >= vocab, -1) is var bias and >= 0)
            throw ApiException.BadRequest("logit_bias", $"logit_bias names token id {bias}, outside the vocabulary (size {vocab})");
        for (int i = 0; i < stopTokenIds.Count; i++)
            if (stopTokenIds[i] >= vocab)
                throw ApiException.BadRequest($"stop_token_ids[{i}]", $"stop token id {stopTokenIds[i]} is outside the vocabulary (size {vocab})");
    }

    IReadOnlyList<int> PromptTokens(CompletionRequest r)
    {
        if (r.PromptTokens is not null) return r.PromptTokens;
        if (tokenizer is null)
            throw ApiException.BadRequest(r.PromptParam, "this model has no tokenizer: send the prompt as token ids (POST /v1/completions with an integer array, or POST /v1/generate)", "no_tokenizer");
        if (r.Kind == CompletionKind.Completion) return tokenizer.Encode(r.PromptText!);
        string text;
        try { text = chat.Render(r.Messages!); }
        catch (TemplateRaisedException e) { throw ApiException.BadRequest("messages", $"the model's chat template rejected the conversation: {e.Message}"); }
        catch (JinjaException e) { throw ApiException.BadRequest("messages", $"the model's chat template failed on this conversation: {e.Message}"); }
        catch (ChatTemplateException e) { throw ApiException.BadRequest("messages", e.Message, "no_chat_template"); }
        // The template writes BOS and other special tokens itself, as apply_chat_template does.
        return tokenizer.Encode(text, addSpecialTokens: false);
    }

    /// <summary>Runs a prepared request. <paramref name="onAccepted"/> runs once the gateway has accepted the request (before
    /// any text), <paramref name="onText"/> for each piece of text safe to show. Returns null when cancelled by
    /// <paramref name="cancellation"/> (client gone, job cancelled). Throws <see cref="ApiException"/> when the gateway
    /// refuses (400 invalid, 429 overloaded) or the generation fails (500).</summary>
    public async Task<CompletionOutcome?> RunAsync(PreparedCompletion p, Func<ValueTask>? onAccepted, Func<string, ValueTask>? onText, CancellationToken cancellation)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        await using var events = generation.GenerateAsync(p.Generation, stop.Token).GetAsyncEnumerator(CancellationToken.None);
        bool any;
        try { any = await events.MoveNextAsync(); }
        catch (InvalidGenerationRequestException e) { throw ApiException.BadRequest(MapField(e.Field, p.Request), e.Message); }
        catch (GatewayOverloadedException e) { throw new ApiException(429, $"the server is overloaded ({e.Message}); retry later", null, "overloaded", "rate_limit_error"); }
        catch (GatewayUnavailableException e) { throw new ApiException(503, e.Message, null, "unavailable", "server_error"); }
        var detokenizer = tokenizer?.CreateStreamingDetokenizer();
        var matcher = new StopStringMatcher(p.Request.Stop);
        var text = new StringBuilder();
        var tokens = new List<int>();
        bool ended = false;
        try
        {
            if (onAccepted is not null) await onAccepted();

            string? finish = null;
            for (; any; any = await events.MoveNextAsync())
            {
                switch (events.Current)
                {
                    case TokenGenerated t:
                        tokens.Add(t.Token);
                        if (await Emit(detokenizer?.Append(t.Token) ?? "")) finish = "stop";
                        break;
                    case SequenceFinished f:
                        ended = true;
                        switch (f.Reason)
                        {
                            case FinishReason.Cancelled: return null;
                            case FinishReason.Error:
                                throw new ApiException(500, $"generation failed: {f.Error}", null, "generation_failed", "server_error");
                        }
                        finish = f.Reason == FinishReason.Length ? "length" : "stop";
                        if (await Emit(detokenizer?.Flush() ?? "")) finish = "stop";
                        else await Write(matcher.Flush());
                        break;
                }
                if (finish is not null) break;
            }
            if (finish is null) return null;
            return new CompletionOutcome(text.ToString(), finish, p.Generation.PromptTokens.Count, tokens.Count, tokens);
        }
        finally
        {
            // Whatever else ended the run (stop string, client gone, exception), the gateway frees the sequence now.
            if (!ended) await stop.CancelAsync();
        }

        async ValueTask<bool> Emit(string piece)
        {
            if (piece.Length == 0) return false;
            var (emit, stopped) = matcher.Push(piece);
            await Write(emit);
            return stopped;
        }

        async ValueTask Write(string piece)
        {
            if (piece.Length == 0) return;
            text.Append(piece);
            if (onText is not null) await onText(piece);
        }
    }

    static string MapField(string field, CompletionRequest r) => field switch
    {
        "prompt" => r.PromptParam,
        "topp" or "top_p" => "top_p",
        "topk" or "top_k" => "top_k",
        _ => field,
    };
}
