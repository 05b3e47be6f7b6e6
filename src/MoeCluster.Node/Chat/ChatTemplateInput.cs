using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Node.Chat.Jinja;

namespace MoeCluster.Node.Chat;

/// <summary>A parsed chat request as the template's input, the way vLLM hands it over: messages with name, tool_call_id
/// and tool_calls (their arguments parsed into objects, as templates expect), and the tools as
/// <c>{"type":"function","function":{…}}</c>. A template that does not render tools still hears of them: the functions
/// go into the system message in Qwen2.5's wording, and earlier calls into the assistant's content, in the
/// <c>&lt;tool_call&gt;</c> format the output is parsed in (<see cref="ToolCallStream"/>).</summary>
public static class ChatTemplateInput
{
    public static ChatTemplateRequest For(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools, bool rendersTools, bool addGenerationPrompt = true)
    {
        var shown = messages;
        if (tools.Count > 0 && !rendersTools)
        {
            shown = WithToolsInSystemMessage(shown, tools);
            shown = shown.Select(m => m.ToolCalls.Count == 0 ? m : m with { Content = ContentWithCalls(m), ToolCalls = [] }).ToList();
        }
        return new ChatTemplateRequest(new JsonArray(shown.Select(Message).ToArray()))
        {
            Tools = tools.Count == 0 ? null : new JsonArray(tools.Select(t => (JsonNode?)Tool(t)).ToArray()),
            AddGenerationPrompt = addGenerationPrompt,
        };
    }

    static JsonNode Message(ChatMessage m)
    {
        var o = new JsonObject { ["role"] = m.Role, ["content"] = m.Content };
        if (m.Name is not null) o["name"] = m.Name;
        if (m.ToolCallId is not null) o["tool_call_id"] = m.ToolCallId;
        if (m.ToolCalls.Count > 0)
            o["tool_calls"] = new JsonArray(m.ToolCalls.Select(c => (JsonNode?)new JsonObject
            {
                ["id"] = c.Id, ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = Arguments(c.Arguments) },
            }).ToArray());
        return o;
    }

    static JsonObject Tool(ToolDefinition t)
    {
        var function = new JsonObject { ["name"] = t.Name };
        if (t.Description is not null) function["description"] = t.Description;
        function["parameters"] = t.Parameters is null ? new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() } : JsonNode.Parse(t.Parameters);
        return new JsonObject { ["type"] = "function", ["function"] = function };
    }

    /// <summary>Arguments as an object when they are a JSON object (what templates expect), else the text.</summary>
    static JsonNode? Arguments(string json)
    {
        try { return JsonNode.Parse(json) is JsonObject o ? o : JsonValue.Create(json); }
        catch (JsonException) { return JsonValue.Create(json); }
    }

    static string ToolsSystemText(IReadOnlyList<ToolDefinition> tools)
    {
        var sb = new StringBuilder("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
            .Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        foreach (var t in tools) sb.Append('\n').Append(PythonJson.Dumps(ChatPromptRenderer.FromJson(Tool(t))));
        return sb.Append("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
            .Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>").ToString();
    }

    static IReadOnlyList<ChatMessage> WithToolsInSystemMessage(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools)
    {
        string text = ToolsSystemText(tools);
        if (messages.Count > 0 && messages[0].Role == "system")
            return [messages[0] with { Content = messages[0].Content + "\n\n" + text }, .. messages.Skip(1)];
        return [new ChatMessage("system", text), .. messages];
    }

    static string ContentWithCalls(ChatMessage m)
    {
        var sb = new StringBuilder(m.Content);
        foreach (var call in m.ToolCalls)
            sb.Append(sb.Length > 0 ? "\n" : "").Append("<tool_call>\n")
              .Append(PythonJson.Dumps(new Dictionary<string, object?> { ["name"] = call.Name, ["arguments"] = ChatPromptRenderer.FromJson(Arguments(call.Arguments)) }))
              .Append("\n</tool_call>");
        return sb.ToString();
    }
}
