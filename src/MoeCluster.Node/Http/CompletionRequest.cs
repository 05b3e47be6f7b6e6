using System.Text;
using System.Text.Json;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Chat;

namespace MoeCluster.Node.Http;

public enum CompletionKind { Completion, Chat }

/// <summary>A parsed, validated /v1/completions or /v1/chat/completions request (also one line of a batch job).</summary>
public sealed record CompletionRequest
{
    public required CompletionKind Kind { get; init; }
    public required string Model { get; init; }
    /// <summary>Completions: the prompts, each as text or token ids (several prompts are several choices).</summary>
    public IReadOnlyList<PromptInput> Prompts { get; init; } = [];
    /// <summary>Chat: the conversation.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public int? MaxTokens { get; init; }
    /// <summary>Choices returned per prompt.</summary>
    public int N { get; init; } = 1;
    /// <summary>Completions: choices generated per prompt, of which the <see cref="N"/> with the highest cumulative
    /// log-probability are returned (vLLM's best_of); equals N when not given.</summary>
    public int BestOf { get; init; } = 1;
    public SamplingOptions Sampling { get; init; } = new();
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    /// <summary>Log-probabilities of each generated token with this many alternatives; null = none.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Completions: the prompt is repeated before the completion (and scored when <see cref="Logprobs"/> is set).</summary>
    public bool Echo { get; init; }
    /// <summary>vLLM's priority: lower runs first.</summary>
    public int Priority { get; init; }
    public ResponseFormat ResponseFormat { get; init; } = ResponseFormat.Text;
    public IReadOnlyList<ToolDefinition> Tools { get; init; } = [];
    public ToolChoice ToolChoice { get; init; } = new(ToolChoiceMode.None);
    public bool ParallelToolCalls { get; init; } = true;

    /// <summary>The field a prompt problem is reported under.</summary>
    public string PromptParam => Kind == CompletionKind.Chat ? "messages" : "prompt";

    /// <summary>Validates every field, naming the first bad one. Unknown fields and features we do not implement are
    /// refused (<see cref="RequestFields"/>), never silently ignored. <paramref name="extraFields"/> are wrapper fields
    /// the caller reads (a batch line's <c>custom_id</c>).</summary>
    public static CompletionRequest Parse(JsonElement body, CompletionKind kind, IReadOnlySet<string>? extraFields = null)
    {
        RequestFields.Check(body, kind == CompletionKind.Chat ? RequestFields.Chat : RequestFields.Completion, extra: extraFields);
        string model = JsonFields.String(body, "model") ?? throw ApiException.MissingField("model");
        int n = JsonFields.Int(body, "n", 1, MaxChoices) ?? 1;
        int bestOf = JsonFields.Int(body, "best_of", 1, MaxChoices) ?? n;
        if (bestOf < n) throw ApiException.BadRequest("best_of", $"best_of ({bestOf}) must be at least n ({n})");
        bool stream = JsonFields.Bool(body, "stream") ?? false;
        if (stream && bestOf > n) throw ApiException.BadRequest("best_of", "best_of > n cannot be streamed: the best choices are known only when all have finished (as in OpenAI and vLLM)");
        JsonFields.String(body, "user");
        if (JsonFields.Bool(body, "store") == true) throw ApiException.BadRequest("store", "stored completions are not supported", "unsupported_value");

        int? maxTokens = JsonFields.Int(body, "max_tokens", 1);
        if (kind == CompletionKind.Chat && JsonFields.Int(body, "max_completion_tokens", 1) is { } mct) maxTokens = mct;
        var sampling = SamplingFields.Parse(body, defaultTemperature: 1.0);
        if (sampling.MinTokens > 0 && maxTokens is int max && sampling.MinTokens > max)
            throw ApiException.BadRequest("min_tokens", $"min_tokens ({sampling.MinTokens}) must not exceed max_tokens ({max})");

        var request = new CompletionRequest
        {
            Kind = kind,
            Model = model,
            MaxTokens = maxTokens,
            Sampling = sampling,
            Stop = ParseStop(body),
            StopTokenIds = JsonFields.IntArray(body, "stop_token_ids", 0) ?? [],
            IgnoreEos = JsonFields.Bool(body, "ignore_eos") ?? false,
            Stream = stream,
            N = n,
            BestOf = bestOf,
            IncludeUsage = ParseStreamOptions(body),
            Logprobs = ParseLogprobs(body, kind),
            Echo = kind == CompletionKind.Completion && (JsonFields.Bool(body, "echo") ?? false),
            Priority = JsonFields.Int(body, "priority", -1_000_000, 1_000_000) ?? 0,
            ResponseFormat = ResponseFormat.Parse(body),
        };
        if (kind == CompletionKind.Completion)
        {
            var prompts = ParsePrompts(body);
            if (prompts.Count * bestOf > MaxChoices)
                throw ApiException.BadRequest(bestOf > n ? "best_of" : "n", $"{prompts.Count} prompts × {bestOf} choices = {prompts.Count * bestOf} sequences; at most {MaxChoices} per request");
            return request with { Prompts = prompts };
        }
        JsonFields.String(body, "safety_identifier");
        if (JsonFields.Get(body, "modalities") is { } modalities && !(modalities.ValueKind == JsonValueKind.Array
                && modalities.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text")))
            throw ApiException.BadRequest("modalities", "only the 'text' modality is supported", "unsupported_value");
        var tools = ToolChoice.ParseTools(body);
        return request with
        {
            Messages = ParseMessages(body),
            Tools = tools,
            ToolChoice = ToolChoice.Parse(body, tools),
            ParallelToolCalls = JsonFields.Bool(body, "parallel_tool_calls") ?? true,
        };
    }

    /// <summary>Chat: <c>logprobs: true</c> with <c>top_logprobs</c> 0 to 20. Completions: <c>logprobs</c> 0 to 20 (the
    /// number of alternatives; OpenAI allows 5, vLLM 20).</summary>
    static int? ParseLogprobs(JsonElement body, CompletionKind kind)
    {
        if (kind == CompletionKind.Completion) return JsonFields.Int(body, "logprobs", 0, BatchSampler.MaxTopLogprobs);
        bool on = JsonFields.Bool(body, "logprobs") ?? false;
        int? top = JsonFields.Int(body, "top_logprobs", 0, BatchSampler.MaxTopLogprobs);
        if (top is not null && !on) throw ApiException.BadRequest("top_logprobs", "top_logprobs needs logprobs: true");
        return on ? top ?? 0 : null;
    }

    /// <summary>The maximum number of prompts in one /v1/completions request.</summary>
    public const int MaxPrompts = 64;

    /// <summary>The maximum number of sequences one request generates (prompts × best_of, or n for chat).</summary>
    public const int MaxChoices = 128;

    static bool ParseStreamOptions(JsonElement body)
    {
        if (JsonFields.Object(body, "stream_options") is not { } so) return false;
        RequestFields.Check(so, RequestFields.StreamOptions, "stream_options");
        return JsonFields.Bool(so, "include_usage", "stream_options.include_usage") ?? false;
    }

    /// <summary>OpenAI's prompt forms: a string, an array of token ids, an array of strings, an array of token-id arrays.</summary>
    static IReadOnlyList<PromptInput> ParsePrompts(JsonElement body)
    {
        var prompt = JsonFields.Required(body, "prompt");
        const string Shape = "a string, an array of token ids, an array of strings or an array of token-id arrays";
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return [new PromptInput(prompt.GetString()!, null)];
            case JsonValueKind.Array:
                int count = prompt.GetArrayLength();
                if (count == 0) throw ApiException.BadRequest("prompt", "'prompt' must not be empty");
                if (prompt[0].ValueKind == JsonValueKind.Number) return [new PromptInput(null, JsonFields.AsIntArray(prompt, "prompt", 0))];
                if (count > MaxPrompts) throw ApiException.BadRequest("prompt", $"at most {MaxPrompts} prompts are allowed in one request, got {count}");
                var list = new List<PromptInput>();
                int i = 0;
                foreach (var p in prompt.EnumerateArray())
                {
                    string at = $"prompt[{i++}]";
                    list.Add(p.ValueKind switch
                    {
                        JsonValueKind.String => new PromptInput(p.GetString()!, null),
                        JsonValueKind.Array => new PromptInput(null, JsonFields.AsIntArray(p, at, 0)),
                        _ => throw ApiException.WrongType(at, "a string or an array of token ids"),
                    });
                }
                return list;
            default:
                throw ApiException.WrongType("prompt", Shape);
        }
    }

    static IReadOnlyList<ChatMessage> ParseMessages(JsonElement body)
    {
        var messages = JsonFields.Required(body, "messages");
        if (messages.ValueKind != JsonValueKind.Array) throw ApiException.WrongType("messages", "an array of messages");
        if (messages.GetArrayLength() == 0) throw ApiException.BadRequest("messages", "'messages' must contain at least one message");
        var list = new List<ChatMessage>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiException.WrongType(at, "an object with 'role' and 'content'");
            RequestFields.Check(m, RequestFields.Message, at);
            string role = JsonFields.String(m, "role", $"{at}.role") ?? throw ApiException.MissingField($"{at}.role");
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
                throw ApiException.BadRequest($"{at}.role", $"'{at}.role' must be one of system, developer, user, assistant, tool; got '{role}'");
            JsonFields.String(m, "refusal", $"{at}.refusal");
            var toolCalls = ParseToolCalls(m, at, role);
            string? toolCallId = JsonFields.String(m, "tool_call_id", $"{at}.tool_call_id");
            if (role == "tool" && toolCallId is null) throw ApiException.MissingField($"{at}.tool_call_id");
            list.Add(new ChatMessage(role == "developer" ? "system" : role, ParseContent(m, $"{at}.content", role, toolCalls.Count > 0))
            {
                Name = JsonFields.String(m, "name", $"{at}.name"),
                ToolCalls = toolCalls,
                ToolCallId = toolCallId,
            });
        }
        return list;
    }

    /// <summary>An assistant message's <c>tool_calls</c>: <c>[{"id","type":"function","function":{"name","arguments"}}]</c>.</summary>
    static IReadOnlyList<ToolCall> ParseToolCalls(JsonElement message, string at, string role)
    {
        if (JsonFields.Get(message, "tool_calls") is not { } calls) return [];
        string param = $"{at}.tool_calls";
        if (role != "assistant") throw ApiException.BadRequest(param, "only assistant messages carry tool_calls");
        if (calls.ValueKind != JsonValueKind.Array) throw ApiException.WrongType(param, "an array of tool calls");
        var list = new List<ToolCall>();
        int i = 0;
        foreach (var c in calls.EnumerateArray())
        {
            string ca = $"{param}[{i++}]";
            if (c.ValueKind != JsonValueKind.Object) throw ApiException.WrongType(ca, "a tool call object");
            RequestFields.Check(c, new HashSet<string> { "id", "type", "function" }, ca);
            string id = JsonFields.String(c, "id", $"{ca}.id") ?? throw ApiException.MissingField($"{ca}.id");
            if (JsonFields.String(c, "type", $"{ca}.type") is { } type && type != "function") throw ApiException.BadRequest($"{ca}.type", "only 'function' tool calls exist");
            var f = JsonFields.Object(c, "function", $"{ca}.function") ?? throw ApiException.MissingField($"{ca}.function");
            RequestFields.Check(f, new HashSet<string> { "name", "arguments" }, $"{ca}.function");
            string name = JsonFields.String(f, "name", $"{ca}.function.name") ?? throw ApiException.MissingField($"{ca}.function.name");
            string arguments = JsonFields.String(f, "arguments", $"{ca}.function.arguments") ?? "{}";
            list.Add(new ToolCall(id, name, arguments));
        }
        return list;
    }

    static string ParseContent(JsonElement message, string param, string role, bool hasToolCalls)
    {
        if (JsonFields.Get(message, "content") is not { } c)
            return role == "assistant" || hasToolCalls ? "" : throw ApiException.MissingField(param);
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw ApiException.WrongType(param, "a string or an array of content parts");
        var text = new StringBuilder();
        int i = 0;
        foreach (var part in c.EnumerateArray())
        {
            string at = $"{param}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object) throw ApiException.WrongType(at, "a content part object");
            if (JsonFields.String(part, "type", $"{at}.type") == "text") RequestFields.Check(part, RequestFields.ContentPart, at);
            string type = JsonFields.String(part, "type", $"{at}.type") ?? throw ApiException.MissingField($"{at}.type");
            if (type != "text") throw ApiException.BadRequest($"{at}.type", $"content parts of type '{type}' are not supported; only 'text'", "unsupported_value");
            text.Append(JsonFields.String(part, "text", $"{at}.text") ?? throw ApiException.MissingField($"{at}.text"));
        }
        return text.ToString();
    }

    static IReadOnlyList<string> ParseStop(JsonElement body)
    {
        if (JsonFields.Get(body, "stop") is not { } stop) return [];
        var list = new List<string>();
        if (stop.ValueKind == JsonValueKind.String) list.Add(stop.GetString()!);
        else if (stop.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var s in stop.EnumerateArray())
            {
                if (s.ValueKind != JsonValueKind.String) throw ApiException.WrongType($"stop[{i}]", "a string");
                list.Add(s.GetString()!);
                i++;
            }
            if (list.Count > 4) throw ApiException.BadRequest("stop", $"at most 4 stop sequences are allowed, got {list.Count}");
        }
        else throw ApiException.WrongType("stop", "a string or an array of strings");
        if (list.Any(s => s.Length == 0)) throw ApiException.BadRequest("stop", "stop sequences must not be empty");
        return list;
    }
}

/// <summary>One completions prompt: text, or token ids.</summary>
public sealed record PromptInput(string? Text, IReadOnlyList<int>? Tokens);
