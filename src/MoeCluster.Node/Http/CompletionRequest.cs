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
    /// <summary>Completions: the prompt as text, or null when given as token ids.</summary>
    public string? PromptText { get; init; }
    public IReadOnlyList<int>? PromptTokens { get; init; }
    /// <summary>Chat: the conversation.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public int? MaxTokens { get; init; }
    public SamplingOptions Sampling { get; init; } = new();
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }

    /// <summary>The field a prompt problem is reported under.</summary>
    public string PromptParam => Kind == CompletionKind.Chat ? "messages" : "prompt";

    /// <summary>Validates every field, naming the first bad one. Unknown fields and features we do not implement are
    /// refused (<see cref="RequestFields"/>), never silently ignored. <paramref name="extraFields"/> are wrapper fields
    /// the caller reads (a batch line's <c>custom_id</c>).</summary>
    public static CompletionRequest Parse(JsonElement body, CompletionKind kind, IReadOnlySet<string>? extraFields = null)
    {
        RequestFields.Check(body, kind == CompletionKind.Chat ? RequestFields.Chat : RequestFields.Completion, extra: extraFields);
        string model = JsonFields.String(body, "model") ?? throw ApiException.MissingField("model");
        int n = JsonFields.Int(body, "n", 1, 128) ?? 1;
        if (n != 1) throw ApiException.BadRequest("n", $"only n=1 is supported, got {n}", "unsupported_value");
        RefuseUnsupported(body, kind);

        int? maxTokens = JsonFields.Int(body, "max_tokens", 1);
        if (kind == CompletionKind.Chat && JsonFields.Int(body, "max_completion_tokens", 1) is { } mct) maxTokens = mct;
        var sampling = SamplingFields.Parse(body, defaultTemperature: 1.0);
        if (sampling.HasPenalties || sampling.LogitBias.Count > 0 || sampling.MinP > 0 || sampling.MinTokens > 0)
            throw ApiException.BadRequest(FirstPresent(body, "frequency_penalty", "presence_penalty", "repetition_penalty", "logit_bias", "min_p", "min_tokens"),
                "penalties, logit_bias, min_p and min_tokens are not implemented yet", "unsupported_parameter");
        JsonFields.String(body, "user");
        if (JsonFields.Bool(body, "store") == true) throw ApiException.BadRequest("store", "stored completions are not supported", "unsupported_value");
        if (JsonFields.Get(body, "priority") is not null) throw ApiException.BadRequest("priority", "priority is not implemented yet", "unsupported_parameter");

        var request = new CompletionRequest
        {
            Kind = kind,
            Model = model,
            MaxTokens = maxTokens,
            Sampling = sampling,
            Stop = ParseStop(body),
            StopTokenIds = JsonFields.IntArray(body, "stop_token_ids", 0) ?? [],
            IgnoreEos = JsonFields.Bool(body, "ignore_eos") ?? false,
            Stream = JsonFields.Bool(body, "stream") ?? false,
            IncludeUsage = ParseStreamOptions(body),
        };
        return kind == CompletionKind.Chat ? request with { Messages = ParseMessages(body) } : WithPrompt(request, body);
    }

    static bool ParseStreamOptions(JsonElement body)
    {
        if (JsonFields.Object(body, "stream_options") is not { } so) return false;
        RequestFields.Check(so, RequestFields.StreamOptions, "stream_options");
        return JsonFields.Bool(so, "include_usage", "stream_options.include_usage") ?? false;
    }

    static CompletionRequest WithPrompt(CompletionRequest request, JsonElement body)
    {
        var prompt = JsonFields.Required(body, "prompt");
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return request with { PromptText = prompt.GetString()! };
            case JsonValueKind.Array:
                int count = prompt.GetArrayLength();
                if (count == 0) throw ApiException.BadRequest("prompt", "'prompt' must not be empty");
                var first = prompt[0];
                if (first.ValueKind == JsonValueKind.Number) return request with { PromptTokens = JsonFields.AsIntArray(prompt, "prompt", 0) };
                if (count != 1)
                    throw ApiException.BadRequest("prompt", $"a list of {count} prompts is not supported; send one prompt per request (or a batch job)", "unsupported_value");
                if (first.ValueKind == JsonValueKind.String) return request with { PromptText = first.GetString()! };
                if (first.ValueKind == JsonValueKind.Array) return request with { PromptTokens = JsonFields.AsIntArray(first, "prompt[0]", 0) };
                throw ApiException.WrongType("prompt", "a string, an array of token ids, or a one-element array of either");
            default:
                throw ApiException.WrongType("prompt", "a string, an array of token ids, or a one-element array of either");
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
            JsonFields.String(m, "name", $"{at}.name");
            JsonFields.String(m, "refusal", $"{at}.refusal");
            if (JsonFields.Get(m, "tool_calls") is not null) throw ApiException.BadRequest($"{at}.tool_calls", "tool calls are not implemented yet", "unsupported_parameter");
            JsonFields.String(m, "tool_call_id", $"{at}.tool_call_id");
            string role = JsonFields.String(m, "role", $"{at}.role") ?? throw ApiException.MissingField($"{at}.role");
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
                throw ApiException.BadRequest($"{at}.role", $"'{at}.role' must be one of system, developer, user, assistant, tool; got '{role}'");
            list.Add(new ChatMessage(role == "developer" ? "system" : role, ParseContent(m, $"{at}.content", role)));
        }
        return list;
    }

    static string ParseContent(JsonElement message, string param, string role)
    {
        if (JsonFields.Get(message, "content") is not { } c)
            return role == "assistant" ? "" : throw ApiException.MissingField(param);
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

    static string FirstPresent(JsonElement body, params string[] names) => names.First(n => JsonFields.Get(body, n) is not null);

    static void RefuseUnsupported(JsonElement body, CompletionKind kind)
    {
        if (kind == CompletionKind.Chat)
        {
            JsonFields.String(body, "safety_identifier");
            if (JsonFields.Get(body, "modalities") is { } modalities && !(modalities.ValueKind == JsonValueKind.Array
                    && modalities.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text")))
                throw ApiException.BadRequest("modalities", "only the 'text' modality is supported", "unsupported_value");
            if (JsonFields.Get(body, "tool_choice") is { } tc && !(tc.ValueKind == JsonValueKind.String && tc.GetString() == "none"))
                throw ApiException.BadRequest("tool_choice", "tool calling is not implemented yet", "unsupported_parameter");
            if (JsonFields.Get(body, "parallel_tool_calls") is not null) JsonFields.Bool(body, "parallel_tool_calls");
        }
        if (JsonFields.Get(body, "logprobs") is { } lp && lp.ValueKind != JsonValueKind.False && !(lp.ValueKind == JsonValueKind.Number && lp.GetRawText() == "0"))
            throw ApiException.BadRequest("logprobs", "logprobs are not supported", "unsupported_parameter");
        if (JsonFields.Get(body, "top_logprobs") is not null)
            throw ApiException.BadRequest("top_logprobs", "logprobs are not supported", "unsupported_parameter");
        if (JsonFields.Bool(body, "echo") == true) throw ApiException.BadRequest("echo", "echo is not supported", "unsupported_parameter");
        if (JsonFields.Int(body, "best_of", 1, 128) is > 1) throw ApiException.BadRequest("best_of", "only best_of=1 is supported", "unsupported_value");
        if (kind == CompletionKind.Completion && JsonFields.Get(body, "suffix") is not null)
            throw ApiException.BadRequest("suffix", "suffix is not supported", "unsupported_parameter");
        if (JsonFields.Get(body, "tools") is { } tools && (tools.ValueKind != JsonValueKind.Array || tools.GetArrayLength() > 0))
            throw ApiException.BadRequest("tools", "tool calling is not implemented yet", "unsupported_parameter");
        if (JsonFields.Object(body, "response_format") is { } rf)
        {
            string t = JsonFields.String(rf, "type", "response_format.type") ?? throw ApiException.MissingField("response_format.type");
            if (t != "text") throw ApiException.BadRequest("response_format.type", $"response_format '{t}' is not implemented yet; only 'text'", "unsupported_value");
            RequestFields.Check(rf, new HashSet<string> { "type" }, "response_format");
        }
    }
}
