using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat.Jinja;

namespace MoeCluster.Node.Chat;

/// <summary>What a chat template is rendered with: the messages as the client sent them (tool_calls, reasoning and
/// content parts included), the tool definitions, and extra template variables (<c>chat_template_kwargs</c>, e.g.
/// <c>enable_thinking</c>).</summary>
public sealed record ChatTemplateRequest(JsonArray Messages)
{
    public JsonArray? Tools { get; init; }
    public JsonArray? Documents { get; init; }
    public bool AddGenerationPrompt { get; init; } = true;
    public JsonObject? Kwargs { get; init; }
}

/// <summary>The chat template cannot be used: it does not compile (named construct), or there is none.</summary>
public class ChatTemplateException(string message) : Exception(message);

/// <summary>
/// Turns chat messages into prompt text with the checkpoint's chat template, as transformers' apply_chat_template
/// does: the template from chat_template.jinja or tokenizer_config.json (named templates: "tool_use" when tools are
/// given and the checkpoint has one, else "default"), or the one given with <c>--chat-template</c>; rendered with
/// messages, tools, documents, add_generation_prompt, the special-token texts of special_tokens_map
/// (bos_token, eos_token...) and the request's template kwargs, plus raise_exception and strftime_now. A template
/// that does not compile is refused here, at load, naming the construct; a checkpoint without one refuses chat
/// requests with that reason — there is no silent fallback format.
/// </summary>
public sealed class ChatPromptRenderer
{
    readonly Dictionary<string, JinjaTemplate> templates = new(StringComparer.Ordinal);
    readonly Dictionary<string, object?> specialTokens = new(StringComparer.Ordinal);
    readonly TimeProvider clock;

    /// <summary>Where the template came from, for messages and logs.</summary>
    public string Source { get; }

    public bool HasTemplate => templates.Count > 0;

    /// <summary>Whether the template itself renders <c>tools</c> (Qwen2.5/3, Hermes, Llama 3.1…); when it does not,
    /// <see cref="ChatTemplateInput"/> describes the tools in the system message instead.</summary>
    public bool RendersTools { get; private set; }

    public ChatPromptRenderer(IReadOnlyDictionary<string, string> templates, IReadOnlyDictionary<string, string> specialTokens,
        IReadOnlyList<string>? additionalSpecialTokens = null, TimeProvider? clock = null, string source = "the checkpoint")
    {
        Source = source;
        this.clock = clock ?? TimeProvider.System;
        foreach (var (key, text) in specialTokens) this.specialTokens[key] = text;
        if (additionalSpecialTokens is { Count: > 0 }) this.specialTokens["additional_special_tokens"] = additionalSpecialTokens.Select(t => (object?)t).ToList();
        foreach (var (name, source2) in templates)
        {
            RendersTools |= source2.Contains("tools", StringComparison.Ordinal);
            try { this.templates[name] = JinjaTemplate.Compile(source2); }
            catch (JinjaException e)
            {
                throw new ChatTemplateException(
                    $"{source}: chat template \"{name}\" cannot be rendered: {e.Message}. Fix the template, or give one with --chat-template FILE.");
            }
        }
    }

    /// <summary>The renderer for a checkpoint: its own templates, or <paramref name="overrideTemplate"/> (a file path,
    /// or the template text itself) when given. Throws <see cref="ChatTemplateException"/> for a template that does
    /// not compile.</summary>
    public static ChatPromptRenderer ForCheckpoint(ModelTokenizer? tokenizer, string? overrideTemplate = null, TimeProvider? clock = null)
    {
        var specials = tokenizer?.SpecialTokenTexts ?? new Dictionary<string, string>();
        var additional = tokenizer?.AdditionalSpecialTokens;
        if (overrideTemplate is not null)
        {
            bool isFile = File.Exists(overrideTemplate);
            string text = isFile ? File.ReadAllText(overrideTemplate) : overrideTemplate;
            return new ChatPromptRenderer(new Dictionary<string, string> { ["default"] = text }, specials, additional, clock,
                isFile ? $"--chat-template {overrideTemplate}" : "--chat-template");
        }
        return new ChatPromptRenderer(tokenizer?.ChatTemplates ?? new Dictionary<string, string>(), specials, additional, clock,
            tokenizer is null ? "the checkpoint" : $"{Path.GetDirectoryName(tokenizer.TokenizerFile)}");
    }

    /// <summary>The prompt text for <paramref name="messages"/> (role and text content only).</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Render(new ChatTemplateRequest(new JsonArray(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()))
        {
            AddGenerationPrompt = addGenerationPrompt,
        });

    /// <summary>The prompt text for a request. Throws <see cref="TemplateRaisedException"/> when the template rejects
    /// the conversation, <see cref="JinjaException"/> when it fails on it, and <see cref="ChatTemplateException"/>
    /// when there is no template.</summary>
    public string Render(ChatTemplateRequest request)
    {
        var template = Select(request.Tools is not null);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = FromJson(request.Messages),
            ["tools"] = request.Tools is null ? null : FromJson(request.Tools),
            ["documents"] = request.Documents is null ? null : FromJson(request.Documents),
            ["add_generation_prompt"] = request.AddGenerationPrompt,
        };
        foreach (var (k, v) in specialTokens) variables[k] = v;
        if (request.Kwargs is not null)
            foreach (var (k, v) in request.Kwargs) variables[k] = FromJson(v);
        foreach (var (k, v) in Globals()) variables.TryAdd(k, v);
        return template.Render(variables);
    }

    JinjaTemplate Select(bool hasTools)
    {
        if (templates.Count == 0)
            throw new ChatTemplateException($"{Source} has no chat template (no chat_template.jinja and no chat_template in tokenizer_config.json); start the server with --chat-template FILE, or send the prompt to /v1/completions");
        if (hasTools && templates.TryGetValue("tool_use", out var toolUse)) return toolUse;
        if (templates.TryGetValue("default", out var fallback)) return fallback;
        throw new ChatTemplateException($"{Source} has several chat templates ({string.Join(", ", templates.Keys)}) and none named \"default\"");
    }

    Dictionary<string, object?> Globals() => TemplateGlobals(clock);

    /// <summary>The functions transformers' environment gives every template (and Jinja's own range, namespace, dict).</summary>
    public static Dictionary<string, object?> TemplateGlobals(TimeProvider clock) => new()
    {
        ["raise_exception"] = (JinjaFunction)((args, _) => throw new TemplateRaisedException(args.Count > 0 ? JinjaValues.ToText(args[0]) : "the chat template rejected the conversation")),
        ["strftime_now"] = (JinjaFunction)((args, _) => Strftime(clock.GetLocalNow().DateTime, args.Count > 0 ? JinjaValues.ToText(args[0]) : "%Y-%m-%d")),
        ["range"] = (JinjaFunction)Range,
        ["namespace"] = (JinjaFunction)((args, kwargs) =>
        {
            var ns = new Namespace();
            if (args.Count > 0 && args[0] is IDictionary<string, object?> initial) foreach (var (k, v) in initial) ns[k] = v;
            foreach (var (k, v) in kwargs) ns[k] = v;
            return ns;
        }),
        ["dict"] = (JinjaFunction)((_, kwargs) => kwargs.ToDictionary(k => k.Key, k => k.Value)),
    };

    /// <summary>JSON as the values Python's json.loads gives the template: dicts in order, int or float by the number's form.</summary>
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => FromJson(p.Value)),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.ToJsonString() is var raw && raw.IndexOfAny(['.', 'e', 'E']) < 0 && long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)
                ? (object)l : double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture),
            _ => null,
        },
        _ => null,
    };

    static object? Range(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> _)
    {
        long Arg(int i) => args[i] is long l ? l : throw new JinjaException("range() integer arguments expected");
        var (start, stop, step) = args.Count switch
        {
            1 => (0L, Arg(0), 1L),
            2 => (Arg(0), Arg(1), 1L),
            3 => (Arg(0), Arg(1), Arg(2)),
            _ => throw new JinjaException("range() takes 1 to 3 arguments"),
        };
        if (step == 0) throw new JinjaException("range() arg 3 must not be zero");
        var list = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            list.Add(i);
            if (list.Count > 100_000) throw new JinjaException("range() too long (the sandbox allows 100,000 items)");
        }
        return list;
    }

    /// <summary>Python's strftime for the codes chat templates use ("today's date" in Llama 3.x and gpt-oss).</summary>
    static string Strftime(DateTime now, string format)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char code = format[++i];
            sb.Append(code switch
            {
                'Y' => now.ToString("yyyy", c), 'y' => now.ToString("yy", c), 'm' => now.ToString("MM", c), 'd' => now.ToString("dd", c),
                'e' => now.Day.ToString(c).PadLeft(2), 'B' => now.ToString("MMMM", c), 'b' or 'h' => now.ToString("MMM", c),
                'A' => now.ToString("dddd", c), 'a' => now.ToString("ddd", c), 'H' => now.ToString("HH", c), 'I' => now.ToString("hh", c),
                'M' => now.ToString("mm", c), 'S' => now.ToString("ss", c), 'p' => now.Hour < 12 ? "AM" : "PM", 'j' => now.DayOfYear.ToString("000", c),
                '%' => "%",
                _ => "%" + code,
            });
        }
        return sb.ToString();
    }
}
