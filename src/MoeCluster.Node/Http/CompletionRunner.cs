using System.Text;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Chat.Jinja;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

/// <summary>One choice of a request, ready to run: its index (prompt × best_of + choice), the prompt it belongs to, its
/// generation request and, for echo, the prompt text to repeat.</summary>
public sealed record PreparedChoice(int Index, GenerationRequest Generation, string EchoText, int Prompt = 0);

/// <summary>A request turned into token ids and one <see cref="GenerationRequest"/> per choice (one per prompt).</summary>
public sealed record PreparedCompletion(CompletionRequest Request, IReadOnlyList<PreparedChoice> Choices, string Id, long Created);

/// <summary>How a choice ended: its text (stop strings removed, tool calls taken out), OpenAI finish_reason, token
/// counts, and the log-probabilities asked for.</summary>
public sealed record CompletionOutcome(
    int Index, string Text, string FinishReason, int PromptTokens, int CompletionTokens, IReadOnlyList<int> TokenIds,
    IReadOnlyList<TokenLogprob>? Logprobs, IReadOnlyList<TokenLogprob?>? PromptLogprobs, IReadOnlyList<ToolCall> ToolCalls, int CachedPromptTokens = 0,
    int Prompt = 0, double CumulativeLogprob = 0);

/// <summary>A piece of one choice to stream: text safe to show, the log-probabilities of the tokens it came from,
/// prompt log-probabilities (first delta with echo), and tool calls completed in it.</summary>
public sealed record CompletionDelta(int Index, string Text, IReadOnlyList<TokenLogprob> Logprobs, IReadOnlyList<TokenLogprob?>? PromptLogprobs,
    IReadOnlyList<ToolCall> ToolCalls);

/// <summary>Runs OpenAI completion and chat requests on the <see cref="IGenerationService"/>: tokenises (through the
/// chat template for chat, given the tools), enforces the context, adds EOS ids as stop tokens, constrains the output
/// when a JSON format or a tool call is required, detokenises as tokens stream, applies text stop strings (cancelling
/// the request when one is hit, so its KV-cache slot is freed at once) and takes tool calls out of the text.
/// Several prompts run as concurrent sequences. Shared by the HTTP endpoints and batch jobs.</summary>
public sealed class CompletionRunner(IGenerationService generation, ModelTokenizer? tokenizer, ChatPromptRenderer chat, ServingOptions options)
{
    public int ContextLength => options.ContextLength ?? generation.Config.MaxPositionEmbeddings;

    /// <summary>Validates the request against the served model and turns it into token ids; throws
    /// <see cref="ApiException"/> naming the field at fault.</summary>
    public PreparedCompletion Prepare(CompletionRequest r)
    {
        if (r.Model != options.ModelName)
            throw new ApiException(404, $"The model '{r.Model}' does not exist; this server serves '{options.ModelName}'", "model", "model_not_found");
        int vocab = generation.Config.VocabSize;
        CheckVocabulary(r.Sampling, r.StopTokenIds, vocab);
        var stopIds = new HashSet<int>(r.StopTokenIds);
        if (!r.IgnoreEos)
        {
            stopIds.UnionWith(generation.Config.EosTokenIds);
            if (tokenizer is not null) stopIds.UnionWith(tokenizer.EosTokenIds);
        }
        var constraint = OutputConstraint.For(r, tokenizer, vocab, stopIds);
        string id = (r.Kind == CompletionKind.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var prompts = PromptTokens(r);
        var choices = new List<PreparedChoice>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var (prompt, echo) = prompts[i];
            string param = prompts.Count > 1 ? $"prompt[{i}]" : r.PromptParam;
            if (prompt.Count == 0) throw ApiException.BadRequest(param, "the prompt must contain at least one token");
            if (prompt.FirstOrDefault(t => t >= vocab, -1) is var bad and >= 0)
                throw ApiException.BadRequest(param, $"token id {bad} is outside the vocabulary (size {vocab})");
            int context = ContextLength;
            if (prompt.Count >= context)
                throw ApiException.BadRequest(param, $"the prompt has {prompt.Count} tokens; the context holds {context} (prompt and completion together)", "context_length_exceeded");
            int room = context - prompt.Count;
            if (r.MaxTokens is int asked && asked > room)
                throw ApiException.BadRequest(r.Kind == CompletionKind.Chat && r.MaxTokens is not null ? MaxTokensParam(r) : "max_tokens",
                    $"max_tokens ({asked}) + the prompt ({prompt.Count} tokens) exceeds the context length {context}; at most {room} tokens can be generated", "context_length_exceeded");
            int maxTokens = r.MaxTokens ?? Math.Min(room, r.Kind == CompletionKind.Chat ? options.DefaultChatMaxTokens : options.DefaultCompletionMaxTokens);
            for (int j = 0; j < r.BestOf; j++)
            {
                var request = new GenerationRequest(r.BestOf == 1 ? $"{id}-{i}" : $"{id}-{i}-{j}", prompt, maxTokens)
                {
                    // Each choice its own generator: seed + choice index, as vLLM seeds the choices of n > 1.
                    Sampling = j == 0 || r.Sampling.Seed is null ? r.Sampling : r.Sampling with { Seed = r.Sampling.Seed + j },
                    StopTokenIds = stopIds.Order().ToArray(),
                    // best_of ranks by cumulative log-probability, so every token's own logprob is needed.
                    Logprobs = r.Logprobs ?? (r.BestOf > r.N ? 0 : null),
                    PromptLogprobs = r.Echo ? r.Logprobs : null,
                    Priority = r.Priority,
                    Constraint = constraint,
                    PrefillGroup = r.BestOf > 1 ? $"{id}-{i}" : null,
                };
                choices.Add(new PreparedChoice(choices.Count, request, r.Echo ? echo : "", i));
            }
        }
        return new PreparedCompletion(r, choices, id, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
    }

    static string MaxTokensParam(CompletionRequest r) => r.Kind == CompletionKind.Chat ? "max_completion_tokens" : "max_tokens";

    /// <summary>Token ids in sampling fields must exist in the served model's vocabulary.</summary>
    public static void CheckVocabulary(SamplingOptions sampling, IReadOnlyList<int> stopTokenIds, int vocab)
    {
        if (sampling.LogitBias.Keys.FirstOrDefault(t => t >= vocab, -1) is var bias and >= 0)
            throw ApiException.BadRequest("logit_bias", $"logit_bias names token id {bias}, outside the vocabulary (size {vocab})");
        for (int i = 0; i < stopTokenIds.Count; i++)
            if (stopTokenIds[i] >= vocab)
                throw ApiException.BadRequest($"stop_token_ids[{i}]", $"stop token id {stopTokenIds[i]} is outside the vocabulary (size {vocab})");
    }

    /// <summary>Each choice's prompt token ids and its text (what echo repeats).</summary>
    IReadOnlyList<(IReadOnlyList<int> Tokens, string Text)> PromptTokens(CompletionRequest r)
    {
        if (r.Kind == CompletionKind.Completion)
            return r.Prompts.Select(p => p.Tokens is { } ids
                ? (ids, tokenizer?.Decode(ids) ?? "")
                : (tokenizer ?? throw NoTokenizer(r)).Encode(p.Text!) is var encoded ? (encoded, p.Text!) : default).ToArray();
        if (tokenizer is null) throw NoTokenizer(r);
        string text;
        try { text = chat.Render(ChatTemplateInput.For(r.Messages!, r.ToolChoice.Mode == ToolChoiceMode.None ? [] : r.Tools, chat.RendersTools)); }
        catch (TemplateRaisedException e) { throw ApiException.BadRequest("messages", $"the model's chat template rejected the conversation: {e.Message}"); }
        catch (JinjaException e) { throw ApiException.BadRequest("messages", $"the model's chat template failed on this conversation: {e.Message}"); }
        catch (ChatTemplateException e) { throw ApiException.BadRequest("messages", e.Message, "no_chat_template"); }
        // The template writes BOS and other special tokens itself, as apply_chat_template does.
        return [(tokenizer.Encode(text, addSpecialTokens: false), text)];
    }

    static ApiException NoTokenizer(CompletionRequest r) => ApiException.BadRequest(r.PromptParam,
        "this model has no tokenizer: send the prompt as token ids (POST /v1/completions with an integer array, or POST /v1/generate)", "no_tokenizer");

    /// <summary>Runs every choice of a prepared request. <paramref name="onAccepted"/> runs once the gateway has accepted
    /// all of them (before any text), <paramref name="onDelta"/> for each piece safe to show (never concurrently).
    /// Returns null when cancelled by <paramref name="cancellation"/> (client gone, job cancelled). Throws
    /// <see cref="ApiException"/> when the gateway refuses (400 invalid, 429 overloaded) or a generation fails (500).</summary>
    public async Task<IReadOnlyList<CompletionOutcome>?> RunAsync(PreparedCompletion p, Func<ValueTask>? onAccepted,
        Func<CompletionDelta, ValueTask>? onDelta, CancellationToken cancellation)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var streams = p.Choices.Select(c => generation.GenerateAsync(c.Generation, stop.Token).GetAsyncEnumerator(CancellationToken.None)).ToArray();
        var ended = new bool[streams.Length];
        try
        {
            bool[] any;
            try { any = await Task.WhenAll(streams.Select(s => s.MoveNextAsync().AsTask())); }
            catch (InvalidGenerationRequestException e) { throw ApiException.BadRequest(MapField(e.Field, p.Request), e.Message); }
            catch (GatewayOverloadedException e) { throw new ApiException(429, $"the server is overloaded ({e.Message}); retry later", null, "overloaded", "rate_limit_error"); }
            catch (GatewayUnavailableException e) { throw new ApiException(503, e.Message, null, "unavailable", "server_error"); }
            if (onAccepted is not null) await onAccepted();
            using var gate = new SemaphoreSlim(1);
            async ValueTask Deliver(CompletionDelta d)
            {
                if (onDelta is null) return;
                await gate.WaitAsync(CancellationToken.None);
                try { await onDelta(d); }
                finally { gate.Release(); }
            }
            var outcomes = await Task.WhenAll(p.Choices.Select(async (c, i) =>
            {
                try { return await Consume(p, c, streams[i], any[i], () => ended[i] = true, Deliver); }
                catch { await stop.CancelAsync(); throw; }
            }));
            return outcomes.Any(o => o is null) ? null : Best(p.Request, outcomes.Select(o => o!).ToArray());
        }
        finally
        {
            // Whatever else ended the run (stop string, client gone, exception), the gateway frees the sequences now.
            if (ended.Any(e => !e)) await stop.CancelAsync();
            foreach (var s in streams) await s.DisposeAsync();
        }
    }

    /// <summary>Per prompt, the n of its best_of choices with the highest cumulative log-probability, best first (vLLM's
    /// best_of), indexed prompt × n + rank. With best_of = n every choice is kept in its order.</summary>
    static IReadOnlyList<CompletionOutcome> Best(CompletionRequest r, IReadOnlyList<CompletionOutcome> all)
    {
        if (r.BestOf == r.N) return all;
        return all.GroupBy(o => o.Prompt).OrderBy(g => g.Key)
            .SelectMany(g => g.OrderByDescending(o => o.CumulativeLogprob).ThenBy(o => o.Index).Take(r.N)
                .Select((o, rank) => o with { Index = g.Key * r.N + rank }))
            .ToArray();
    }

    async Task<CompletionOutcome?> Consume(PreparedCompletion p, PreparedChoice c, IAsyncEnumerator<GenerationEvent> events, bool any,
        Action ended, Func<CompletionDelta, ValueTask> deliver)
    {
        var r = p.Request;
        var detokenizer = tokenizer?.CreateStreamingDetokenizer();
        var matcher = new StopStringMatcher(r.Stop);
        var tools = r.Kind == CompletionKind.Chat && r.ToolChoice.Mode != ToolChoiceMode.None ? new ToolCallStream(r.ParallelToolCalls) : null;
        var text = new StringBuilder(c.EchoText);
        var tokens = new List<int>();
        var logprobs = r.Logprobs is null ? null : new List<TokenLogprob>();
        var pending = new List<TokenLogprob>();
        var calls = new List<ToolCall>();
        List<TokenLogprob?>? promptLogprobs = c.Generation.PromptLogprobs is null ? null : [null];
        bool echoed = c.EchoText.Length == 0 && promptLogprobs is null;
        string? finish = null;
        int cached = 0;
        double cumulative = 0;
        for (; any; any = await events.MoveNextAsync())
        {
            switch (events.Current)
            {
                case PromptTokensScored s:
                    promptLogprobs!.AddRange(s.Logprobs);
                    break;
                case TokenGenerated t:
                    tokens.Add(t.Token);
                    if (t.Logprob is { } lp) { logprobs?.Add(lp); pending.Add(lp); cumulative += lp.Logprob; }
                    if (await Emit(detokenizer?.Append(t.Token) ?? "")) finish = "stop";
                    break;
                case SequenceFinished f:
                    ended();
                    cached = f.CachedPromptTokens;
                    switch (f.Reason)
                    {
                        case FinishReason.Cancelled: return null;
                        case FinishReason.Error:
                            throw new ApiException(500, $"generation failed: {f.Error}", null, "generation_failed", "server_error");
                    }
                    finish = f.Reason == FinishReason.Length ? "length" : "stop";
                    if (await Emit(detokenizer?.Flush() ?? "")) finish = "stop";
                    else await Write(matcher.Flush(), final: true);
                    break;
            }
            if (finish is not null) break;
        }
        if (finish is null) return null;
        if (calls.Count > 0) finish = "tool_calls";
        return new CompletionOutcome(c.Index, text.ToString(), finish, c.Generation.PromptTokens.Count, tokens.Count, tokens, logprobs, promptLogprobs, calls, cached,
            c.Prompt, cumulative);

        async ValueTask<bool> Emit(string piece)
        {
            var (emit, stopped) = piece.Length == 0 ? ("", false) : matcher.Push(piece);
            await Write(emit, final: false);
            return stopped;
        }

        async ValueTask Write(string piece, bool final)
        {
            IReadOnlyList<ToolCall> completed = [];
            if (tools is not null) (piece, completed) = final ? tools.Flush(piece) : tools.Push(piece);
            calls.AddRange(completed);
            if (!echoed)
            {
                echoed = true;
                await deliver(new CompletionDelta(c.Index, c.EchoText, [], promptLogprobs, []));
            }
            if (piece.Length == 0 && completed.Count == 0 && (pending.Count == 0 || !final && tools is not null)) return;
            text.Append(piece);
            var delta = new CompletionDelta(c.Index, piece, pending.ToArray(), null, completed);
            pending.Clear();
            await deliver(delta);
        }
    }

    static string MapField(string field, CompletionRequest r) => field switch
    {
        "prompt" => r.PromptParam,
        _ => field,
    };
}
