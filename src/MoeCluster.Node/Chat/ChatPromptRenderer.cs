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
    int fallbackLogged;

    /// <summary>Why the fallback is used, or null while the checkpoint's template is in use.</summary>
    public string? FallbackReason { get; private set; }

    public ChatPromptRenderer(ModelTokenizer? tokenizer, ILogger<ChatPromptRenderer> logger)
    {
        this.logger = logger;
        bosToken = tokenizer?.BosTokenId is int bos ? tokenizer.Decode([bos], skipSpecialTokens: false) : "";
        eosToken = tokenizer?.EosTokenIds is [int eos, ..] ? tokenizer.Decode([eos], skipSpecialTokens: false) : "";
        if (tokenizer?.ChatTemplate is not { } source) { FallbackReason = "the checkpoint has no chat_template"; return; }
        try { template = JinjaTemplate.Compile(source); }
        catch (JinjaException e) { FallbackReason = $"its chat_template uses unsupported Jinja ({e.Message})"; }
    }

    /// <summary>The prompt text for <paramref name="messages"/>, ending with the assistant's turn opener.
    /// Throws <see cref="TemplateRaisedException"/> when the template rejects the conversation.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        if (template is not null)
        {
            try { return template.Render(Variables(messages, addGenerationPrompt)); }
            catch (TemplateRaisedException) { throw; }
            catch (JinjaException e) { FallbackReason ??= $"its chat_template failed to render ({e.Message})"; }
        }
        if (Interlocked.Exchange(ref fallbackLogged, 1) == 0)
            logger.LogWarning("Chat prompts use the ChatML fallback because {Reason}", FallbackReason);
        return RenderChatMl(messages, addGenerationPrompt);
    }

    /// <summary>The documented fallback: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, then
    /// <c>&lt;|im_start|&gt;assistant\n</c>.</summary>
    public static string RenderChatMl(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder();
        foreach (var m in messages) sb.Append("<|im_start|>").Append(m.Role).Append('\n').Append(m.Content).Append("<|im_end|>\n");
        if (addGenerationPrompt) sb.Append("<|im_start|>assistant\n");
        return sb.ToString();
    }

    Dictionary<string, object?> Variables(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) => new()
    {
        ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
        ["add_generation_prompt"] = addGenerationPrompt,
        ["bos_token"] = bosToken,
        ["eos_token"] = eosToken,
        ["tools"] = null,
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
