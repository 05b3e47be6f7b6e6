using System.Text;
using Microsoft.Extensions.Logging;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat.Jinja;

namespace MoeCluster.Node.Chat;

/// <summary>Turns chat messages into prompt text with the checkpoint's chat template (tokenizer_config.json
/// <c>chat_template</c>), rendered with the variables transformers' <c>apply_chat_template</c> passes. A checkpoint
/// without a template, or one using Jinja this subset does not run, gets the ChatML fallback
/// (<see cref="RenderChatMl"/>); that is logged once.</summary>
public sealed class ChatPromptRenderer
{
    readonly JinjaTemplate? template;
    readonly string bosToken;
    readonly string eosToken;
    readonly ILogger logger;
    /// <summary>Whether the template itself renders <c>tools</c> / assistant <c>tool_calls</c> (Qwen2.5, Hermes, Llama 3.1…).</summary>
    readonly bool templateRendersTools, templateRendersToolCalls;
    int fallbackLogged;

    /// <summary>Why the fallback is used, or null while the checkpoint's template is in use.</summary>
    public string? FallbackReason { get; private set; }

    public ChatPromptRenderer(ModelTokenizer? tokenizer, ILogger<ChatPromptRenderer> logger)
    {
        this.logger = logger;
        bosToken = tokenizer?.BosTokenId is int bos ? tokenizer.Decode([bos], skipSpecialTokens: false) : "";
        eosToken = tokenizer?.EosTokenIds is [int eos, ..] ? tokenizer.Decode([eos], skipSpecialTokens: false) : "";
        if (tokenizer?.ChatTemplate is not { } source) { FallbackReason = "the checkpoint has no chat_template"; return; }
        templateRendersTools = source.Contains("tools", StringComparison.Ordinal);
        templateRendersToolCalls = source.Contains("tool_calls", StringComparison.Ordinal);
        try { template = JinjaTemplate.Compile(source); }
        catch (JinjaException e) { FallbackReason = $"its chat_template uses unsupported Jinja ({e.Message})"; }
    }

    /// <summary>The prompt text for <paramref name="messages"/>, ending with the assistant's turn opener, with
    /// <paramref name="tools"/> given to the template as transformers passes them (<c>tools</c>: a list of
    /// <c>{"type":"function","function":{…}}</c>; assistant <c>tool_calls</c> with their arguments as objects, as vLLM
    /// hands them over). Throws <see cref="TemplateRaisedException"/> when the template rejects the conversation.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyList<ToolDefinition>? tools = null)
    {
        tools ??= [];
        if (template is not null)
        {
            // A template that ignores tools still hears of them: the functions go into the system message, and earlier
            // calls into the assistant's content, in the format the output is parsed in.
            var shown = messages;
            if (tools.Count > 0 && !templateRendersTools) shown = WithToolsInSystemMessage(shown, tools);
            if (!templateRendersToolCalls) shown = shown.Select(m => m.ToolCalls.Count == 0 ? m : m with { Content = ContentWithCalls(m), ToolCalls = [] }).ToList();
            try { return template.Render(Variables(shown, addGenerationPrompt, tools)); }
            catch (TemplateRaisedException) { throw; }
            catch (JinjaException e) { FallbackReason ??= $"its chat_template failed to render ({e.Message})"; }
        }
        if (Interlocked.Exchange(ref fallbackLogged, 1) == 0)
            logger.LogWarning("Chat prompts use the ChatML fallback because {Reason}", FallbackReason);
        return RenderChatMl(messages, addGenerationPrompt, tools);
    }

    /// <summary>The documented fallback: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, then
    /// <c>&lt;|im_start|&gt;assistant\n</c>. With tools it writes what Qwen2.5's template writes: the functions in a
    /// system block, assistant calls as <c>&lt;tool_call&gt;</c> JSON, tool results as <c>&lt;tool_response&gt;</c>.</summary>
    public static string RenderChatMl(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyList<ToolDefinition>? tools = null)
    {
        var sb = new StringBuilder();
        var shown = tools is { Count: > 0 } ? WithToolsInSystemMessage(messages, tools) : messages;
        foreach (var m in shown)
        {
            if (m.Role == "tool")
                sb.Append("<|im_start|>user\n<tool_response>\n").Append(m.Content).Append("\n</tool_response><|im_end|>\n");
            else
                sb.Append("<|im_start|>").Append(m.Role).Append('\n').Append(ContentWithCalls(m)).Append("<|im_end|>\n");
        }
        if (addGenerationPrompt) sb.Append("<|im_start|>assistant\n");
        return sb.ToString();
    }

    static string ToolsSystemText(IReadOnlyList<ToolDefinition> tools)
    {
        var sb = new StringBuilder("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
            .Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        foreach (var t in tools) sb.Append('\n').Append(JinjaValues.ToJson(ToolValue(t)));
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
              .Append(JinjaValues.ToJson(new Dictionary<string, object?> { ["name"] = call.Name, ["arguments"] = Arguments(call.Arguments) })).Append("\n</tool_call>");
        return sb.ToString();
    }

    static Dictionary<string, object?> ToolValue(ToolDefinition t)
    {
        var function = new Dictionary<string, object?> { ["name"] = t.Name };
        if (t.Description is not null) function["description"] = t.Description;
        function["parameters"] = t.Parameters is null ? new Dictionary<string, object?> { ["type"] = "object", ["properties"] = new Dictionary<string, object?>() } : FromJson(t.Parameters);
        return new Dictionary<string, object?> { ["type"] = "function", ["function"] = function };
    }

    /// <summary>Arguments as an object when they are a JSON object (what templates expect), else the text.</summary>
    static object? Arguments(string json)
    {
        try { return FromJson(json) is Dictionary<string, object?> d ? d : json; }
        catch (System.Text.Json.JsonException) { return json; }
    }

    /// <summary>JSON text as Jinja values: objects, lists, strings, longs, doubles, booleans, null.</summary>
    static object? FromJson(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return Convert(doc.RootElement);

        static object? Convert(System.Text.Json.JsonElement e) => e.ValueKind switch
        {
            System.Text.Json.JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Convert(p.Value)),
            System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToList(),
            System.Text.Json.JsonValueKind.String => e.GetString(),
            System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out long l) ? l : e.GetDouble(),
            System.Text.Json.JsonValueKind.True => true,
            System.Text.Json.JsonValueKind.False => false,
            _ => null,
        };
    }

    static Dictionary<string, object?> MessageValue(ChatMessage m)
    {
        var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
        if (m.Name is not null) d["name"] = m.Name;
        if (m.ToolCallId is not null) d["tool_call_id"] = m.ToolCallId;
        if (m.ToolCalls.Count > 0)
            d["tool_calls"] = m.ToolCalls.Select(c => (object?)new Dictionary<string, object?>
            {
                ["id"] = c.Id, ["type"] = "function",
                ["function"] = new Dictionary<string, object?> { ["name"] = c.Name, ["arguments"] = Arguments(c.Arguments) },
            }).ToList();
        return d;
    }

    Dictionary<string, object?> Variables(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ToolDefinition> tools) => new()
    {
        ["messages"] = messages.Select(m => (object?)MessageValue(m)).ToList(),
        ["add_generation_prompt"] = addGenerationPrompt,
        ["bos_token"] = bosToken,
        ["eos_token"] = eosToken,
        ["tools"] = tools.Count == 0 ? null : tools.Select(t => (object?)ToolValue(t)).ToList(),
        ["documents"] = null,
        ["raise_exception"] = (JinjaFunction)((args, _) => throw new TemplateRaisedException(args.Count > 0 ? JinjaValues.ToText(args[0]) : "the chat template rejected the conversation")),
        ["range"] = (JinjaFunction)Range,
        ["namespace"] = (JinjaFunction)((_, kwargs) => { var ns = new Namespace(); foreach (var (k, v) in kwargs) ns[k] = v; return ns; }),
        ["strftime_now"] = (JinjaFunction)((args, _) => StrftimeNow(args.Count > 0 ? JinjaValues.ToText(args[0]) : "%Y-%m-%d")),
    };

    static object? Range(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> _)
    {
        long Arg(int i) => args[i] is long l ? l : throw new JinjaException("range() needs integers");
        var (start, stop, step) = args.Count switch
        {
            1 => (0L, Arg(0), 1L),
            2 => (Arg(0), Arg(1), 1L),
            3 => (Arg(0), Arg(1), Arg(2)),
            _ => throw new JinjaException("range() takes 1 to 3 arguments"),
        };
        if (step == 0) throw new JinjaException("range() step must not be zero");
        var list = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            list.Add(i);
            if (list.Count > 100_000) throw new JinjaException("range() too long");
        }
        return list;
    }

    /// <summary>The strftime codes chat templates use for "today's date" (Llama 3.x).</summary>
    static string StrftimeNow(string format)
    {
        var now = DateTime.Now;
        return format.Replace("%Y", now.ToString("yyyy")).Replace("%m", now.ToString("MM")).Replace("%d", now.ToString("dd"))
            .Replace("%b", now.ToString("MMM", System.Globalization.CultureInfo.InvariantCulture))
            .Replace("%B", now.ToString("MMMM", System.Globalization.CultureInfo.InvariantCulture))
            .Replace("%H", now.ToString("HH")).Replace("%M", now.ToString("mm"));
    }
}
