using System.Text;
using System.Text.RegularExpressions;

namespace MoeCluster.Deploy.Tests;

/// <summary>
/// Turns a Helm template into plain YAML that keeps the template's own structure, so a YAML parser can judge it
/// without helm. Rules: template comments vanish; a line holding only actions is dropped (control flow, and block
/// output such as <c>include ... | nindent</c>, which lands at the indentation nindent gives it); an action inside
/// other text becomes a unique placeholder scalar (<c>tpl1</c>, <c>tpl2</c>, ...); of an if/with/range with an else,
/// only the first branch is kept (so alternatives that set the same key do not collide); define blocks are dropped.
/// Everything else stays as written, so a mis-indented key or a broken list in literal text still fails to parse.
/// </summary>
public static partial class HelmTemplateStripper
{
    public sealed record Action(string Body)
    {
        /// <summary>The action's words without trim markers, e.g. <c>if .Values.x</c> or <c>end</c>.</summary>
        public string Words => Body.Trim().TrimStart('-').TrimEnd('-').Trim();

        public bool IsComment => Words.StartsWith("/*", StringComparison.Ordinal);
    }

    const char Open = '\u0001', Close = '\u0002';

    /// <summary>Every <c>{{ ... }}</c> action of a template, in order; strings inside actions may contain braces.</summary>
    public static IReadOnlyList<Action> Actions(string template) => Tokenize(template).Actions;

    public static string Strip(string template)
    {
        var (marked, actions) = Tokenize(template);
        var frames = new Stack<Frame>();
        var output = new StringBuilder();
        var placeholders = 0;
        var lines = marked.Split('\n');
        for (var index = 0; index < lines.Length; index++)
        {
            var line = lines[index];
            if (index == lines.Length - 1 && line.Length == 0) break;
            var segments = SplitMarked(line);
            var actionOnly = segments.Any(s => s.ActionIndex >= 0)
                && segments.All(s => s.ActionIndex >= 0 || string.IsNullOrWhiteSpace(s.Text));
            var emitted = new StringBuilder();
            foreach (var segment in segments)
            {
                if (segment.ActionIndex < 0)
                {
                    if (!Skipping(frames)) emitted.Append(segment.Text);
                    continue;
                }
                var action = actions[segment.ActionIndex];
                if (action.IsComment) continue;
                if (ApplyControl(action.Words, frames)) continue;
                if (!Skipping(frames)) emitted.Append("tpl").Append(++placeholders);
            }
            if (actionOnly || (Skipping(frames) && emitted.Length == 0)) continue;
            output.Append(emitted).Append('\n');
        }
        if (frames.Count > 0)
            throw new FormatException($"{frames.Count} template block(s) opened with if/range/with/define are never closed by end");
        return output.ToString();
    }

    sealed class Frame(bool skipping)
    {
        public bool Skipping { get; set; } = skipping;
    }

    static bool Skipping(Stack<Frame> frames) => frames.Any(f => f.Skipping);

    /// <summary>Applies if/else/end and friends to the block stack; false for actions that print something.</summary>
    static bool ApplyControl(string words, Stack<Frame> frames)
    {
        var keyword = FirstWord().Match(words).Value;
        switch (keyword)
        {
            case "if" or "with" or "range" or "block":
                frames.Push(new Frame(false));
                return true;
            case "define":
                frames.Push(new Frame(true));
                return true;
            case "else":
                if (frames.Count == 0) throw new FormatException("else without an open if/with/range");
                frames.Peek().Skipping = true;
                return true;
            case "end":
                if (frames.Count == 0) throw new FormatException("end without an open if/with/range/define");
                frames.Pop();
                return true;
            case "break" or "continue":
                return true;
            case "fail":
                return true;
        }
        return Assignment().IsMatch(words);
    }

    sealed record Segment(string Text, int ActionIndex);

    static List<Segment> SplitMarked(string line)
    {
        var segments = new List<Segment>();
        var start = 0;
        while (start < line.Length)
        {
            var open = line.IndexOf(Open, start);
            if (open < 0) { segments.Add(new Segment(line[start..], -1)); break; }
            if (open > start) segments.Add(new Segment(line[start..open], -1));
            var close = line.IndexOf(Close, open);
            segments.Add(new Segment("", int.Parse(line[(open + 1)..close])));
            start = close + 1;
        }
        return segments;
    }

    /// <summary>Replaces each action by a marker holding its index; an action spanning lines becomes one line.</summary>
    static (string Marked, List<Action> Actions) Tokenize(string template)
    {
        var actions = new List<Action>();
        var marked = new StringBuilder();
        var i = 0;
        while (i < template.Length)
        {
            var open = template.IndexOf("{{", i, StringComparison.Ordinal);
            if (open < 0) { marked.Append(template, i, template.Length - i); break; }
            marked.Append(template, i, open - i);
            var end = FindActionEnd(template, open + 2);
            actions.Add(new Action(template[(open + 2)..end]));
            marked.Append(Open).Append(actions.Count - 1).Append(Close);
            i = end + 2;
        }
        return (marked.ToString(), actions);
    }

    static int FindActionEnd(string text, int from)
    {
        var body = text.AsSpan(from).TrimStart().TrimStart('-').TrimStart();
        if (body.StartsWith("/*"))
        {
            var commentEnd = text.IndexOf("*/", from, StringComparison.Ordinal);
            if (commentEnd < 0) throw new FormatException($"template comment opened at offset {from} is never closed");
            var close = text.IndexOf("}}", commentEnd, StringComparison.Ordinal);
            if (close < 0) throw new FormatException($"template comment at offset {from} has no closing }}}}");
            return close;
        }
        for (var i = from; i < text.Length - 1; i++)
        {
            switch (text[i])
            {
                case '"':
                    for (i++; i < text.Length && text[i] != '"'; i++)
                        if (text[i] == '\\') i++;
                    break;
                case '`':
                    i = text.IndexOf('`', i + 1);
                    if (i < 0) throw new FormatException($"raw string in the action at offset {from} is never closed");
                    break;
                case '}' when text[i + 1] == '}':
                    return i;
            }
        }
        throw new FormatException($"template action opened at offset {from - 2} has no closing }}}}");
    }

    [GeneratedRegex(@"^[a-z]+")]
    private static partial Regex FirstWord();

    /// <summary><c>$x := ...</c> and <c>$x = ...</c> print nothing.</summary>
    [GeneratedRegex(@"^\$[A-Za-z0-9_]*\s*:?=[^=]")]
    private static partial Regex Assignment();
}
