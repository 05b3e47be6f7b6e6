namespace MoeCluster.Node.Chat;

/// <summary>One message of a chat request, its content flattened to text (text parts joined). An assistant message may
/// carry the tool calls it made; a tool message names the call it answers.</summary>
public sealed record ChatMessage(string Role, string Content)
{
    public string? Name { get; init; }
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];
    public string? ToolCallId { get; init; }
}

/// <summary>A function call: its id, the function's name and its arguments as a JSON object text.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>A function the model may call (OpenAI's <c>{"type":"function","function":{...}}</c>); Parameters is its JSON
/// Schema text, or null for a function without parameters.</summary>
public sealed record ToolDefinition(string Name, string? Description, string? Parameters, bool Strict);
