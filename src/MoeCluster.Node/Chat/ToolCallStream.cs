using System.Text.Json;

namespace MoeCluster.Node.Chat;

/// <summary>Takes tool calls out of streamed model text in the Hermes format Qwen2.5, Qwen3 and Hermes models are
/// trained on (vLLM's <c>hermes</c> parser): <c>&lt;tool_call&gt;{"name": …, "arguments": {…}}&lt;/tool_call&gt;</c>.
/// Text outside calls is content; text that could still open a call is held back; a call that does not parse as a
/// function call stays content. With <c>parallel_tool_calls: false</c> only the first call is kept.</summary>
public sealed class ToolCallStream(bool parallel)
{
    public const string Open = "<tool_call>";
    public const string Close = "</tool_call>";

    string pending = "";
    bool inside;
    int count;

    /// <summary>Adds text; returns the content safe to show now and the calls completed by it.</summary>
    public (string Content, IReadOnlyList<ToolCall> Calls) Push(string text)
    {
        pending += text;
        var content = new System.Text.StringBuilder();
        var calls = new List<ToolCall>();
        while (true)
        {
            if (!inside)
            {
                int open = pending.IndexOf(Open, StringComparison.Ordinal);
                if (open < 0)
                {
                    int hold = HeldBack(pending, Open);
                    content.Append(pending.AsSpan(0, pending.Length - hold));
                    pending = pending[^hold..];
                    break;
                }
                content.Append(pending.AsSpan(0, open));
                pending = pending[(open + Open.Length)..];
                inside = true;
            }
            int close = pending.IndexOf(Close, StringComparison.Ordinal);
            if (close < 0) break;
            string body = pending[..close];
            pending = pending[(close + Close.Length)..];
            inside = false;
            if (Parse(body) is { } call) { if (parallel || count++ == 0) calls.Add(call); }
            else content.Append(Open).Append(body).Append(Close);
        }
        return (TrimAround(content.ToString(), calls.Count > 0 || inside), calls);
    }

    /// <summary>The end of the output: an unterminated call is parsed if it is complete JSON, else returned as content.</summary>
    public (string Content, IReadOnlyList<ToolCall> Calls) Flush(string text)
    {
        var (content, calls) = Push(text);
        var rest = pending;
        pending = "";
        if (!inside) return (content + rest, calls);
        inside = false;
        if (Parse(rest) is { } call && (parallel || count++ == 0)) return (content, [.. calls, call]);
        return (content + Open + rest, calls);
    }

    /// <summary>Whitespace between calls is not content.</summary>
    static string TrimAround(string content, bool nearCall) => nearCall && string.IsNullOrWhiteSpace(content) ? "" : content;

    static ToolCall? Parse(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body.Trim());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) return null;
            string arguments = root.TryGetProperty("arguments", out var a) ? (a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()) : "{}";
            return new ToolCall("call_" + Guid.NewGuid().ToString("N")[..24], name.GetString()!, arguments);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { return null; }
    }

    static int HeldBack(string text, string marker)
    {
        for (int k = Math.Min(marker.Length - 1, text.Length); k > 0; k--)
            if (text.AsSpan(text.Length - k).SequenceEqual(marker.AsSpan(0, k))) return k;
        return 0;
    }
}
