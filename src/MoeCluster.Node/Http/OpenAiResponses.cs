using System.Text.Json;
using System.Text.Json.Serialization;

namespace MoeCluster.Node.Http;

// Response shapes of the OpenAI API (serialised with snake_case names by OpenAiJson.Options).

public sealed record Usage(int PromptTokens, int CompletionTokens, PromptTokensDetails PromptTokensDetails)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>Prompt tokens whose KV cache came from the prefix cache (OpenAI's and vLLM's <c>cached_tokens</c>).</summary>
public sealed record PromptTokensDetails(int CachedTokens);

/// <summary>Legacy completions logprobs: parallel lists per token (prompt tokens first with echo; the first prompt
/// token has null logprob and top_logprobs, as in OpenAI's answers).</summary>
public sealed record CompletionLogprobs(IReadOnlyList<string> Tokens, IReadOnlyList<float?> TokenLogprobs,
    IReadOnlyList<IReadOnlyDictionary<string, float>?> TopLogprobs, IReadOnlyList<int> TextOffset);

public sealed record CompletionChoice(int Index, string Text, string? FinishReason, CompletionLogprobs? Logprobs = null);

public sealed record CompletionResponse(string Id, long Created, string Model, IReadOnlyList<CompletionChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage)
{
    public string Object => "text_completion";
}

public sealed record FunctionCall(string Name, string Arguments);

public sealed record ToolCallResponse(string Id, FunctionCall Function)
{
    public string Type => "function";
}

public sealed record AssistantMessage(string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallResponse>? ToolCalls = null)
{
    public string Role => "assistant";
}

public sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);

public sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

public sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content)
{
    public object? Refusal => null;
}

public sealed record ChatChoice(int Index, AssistantMessage Message, string FinishReason, ChatLogprobs? Logprobs = null);

public sealed record ChatCompletionResponse(string Id, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage)
{
    public string Object => "chat.completion";
}

public sealed record ToolCallDelta(int Index, string Id, FunctionCall Function)
{
    public string Type => "function";
}

public sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallDelta>? ToolCalls = null);

public sealed record ChatChunkChoice(int Index, ChatDelta Delta, string? FinishReason, ChatLogprobs? Logprobs = null);

public sealed record ChatCompletionChunk(string Id, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage)
{
    public string Object => "chat.completion.chunk";
}

/// <summary>A served model: <c>max_model_len</c> and <c>dtype</c> as vLLM lists them, plus the vocabulary size.</summary>
public sealed record ModelCard(string Id, long Created, int MaxModelLen, string Dtype, int VocabSize)
{
    public string Object => "model";
    public string OwnedBy => "moecluster";
    public string Root => Id;
}

public sealed record ModelList(IReadOnlyList<ModelCard> Data)
{
    public string Object => "list";
}

public static class OpenAiJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
