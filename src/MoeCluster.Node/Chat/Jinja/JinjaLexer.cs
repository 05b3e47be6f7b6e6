using System.Globalization;
using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

public enum TokenKind { Name, String, Integer, Float, Operator, End }

public readonly record struct Token(TokenKind Kind, string Text, object? Value = null)
{
    public bool Is(string op) => (Kind == TokenKind.Operator || Kind == TokenKind.Name) && Text == op;
    public override string ToString() => Kind == TokenKind.End ? "end of tag" : Text;
}

public enum SegmentKind { Text, Output, Statement }

/// <summary>A piece of a template: literal text, <c>{{ expression }}</c> or <c>{% statement %}</c> (comments are dropped).</summary>
public sealed record Segment(SegmentKind Kind, string Text, IReadOnlyList<Token> Tokens);

/// <summary>Splits a Jinja template into segments with Hugging Face's settings (<c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on, as transformers' <c>apply_chat_template</c> compiles templates) and the <c>-</c>
/// whitespace-control markers.</summary>
public static class JinjaLexer
{
    static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "=", ";"];

    public static List<Segment> Segment(string source)
    {
        // keep_trailing_newline is off in transformers' environment: one newline at the very end is dropped.
        if (source.EndsWith("\r\n", StringComparison.Ordinal)) source = source[..^2];
        else if (source.EndsWith('\n')) source = source[..^1];
        var segments = new List<Segment>();
        int pos = 0;
        var text = new StringBuilder();
        while (pos < source.Length)
        {
            int open = NextTagStart(source, pos);
            if (open < 0) { text.Append(source, pos, source.Length - pos); break; }
            text.Append(source, pos, open - pos);
            char kind = source[open + 1];
            int inner = open + 2;
            bool trimLeft = inner < source.Length && source[inner] == '-';
            bool keepIndent = inner < source.Length && source[inner] == '+';
            if (trimLeft || keepIndent) inner++;
            if (trimLeft) TrimEnd(text);
            else if (kind != '{' && !keepIndent) StripIndentBeforeBlock(text, source, open);
            if (text.Length > 0) { segments.Add(new Segment(SegmentKind.Text, text.ToString(), [])); text.Clear(); }

            int end;
            bool trimRight, keepNewline = false;
            if (kind == '#')
            {
                int close = source.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0) throw new JinjaException("unclosed comment {# ... #}");
                trimRight = source[close - 1] == '-';
                end = close + 2;
            }
            else
            {
                string closer = kind == '{' ? "}}" : "%}";
                var tokens = Tokenize(source, inner, closer, out end, out trimRight, out keepNewline);
                segments.Add(new Segment(kind == '{' ? SegmentKind.Output : SegmentKind.Statement, source[open..end], tokens));
                if (kind == '%' && tokens.Count >= 2 && tokens[0].Is("raw"))
                {
                    // {% raw %}...{% endraw %}: the text between is literal.
                    segments.RemoveAt(segments.Count - 1);
                    var endRaw = System.Text.RegularExpressions.Regex.Match(source[end..], @"\{%(-?)\s*endraw\s*(-?)%\}");
                    if (!endRaw.Success) throw new JinjaException("'{% raw %}' is not closed by '{% endraw %}'");
                    string raw = source.Substring(end, endRaw.Index);
                    if (trimRight) raw = raw.TrimStart();
                    if (endRaw.Groups[1].Value == "-") raw = raw.TrimEnd();
                    if (raw.Length > 0) segments.Add(new Segment(SegmentKind.Text, raw, []));
                    end += endRaw.Index + endRaw.Length;
                    trimRight = endRaw.Groups[2].Value == "-";
                    keepNewline = false;
                }
            }
            pos = end;
            if (trimRight) while (pos < source.Length && char.IsWhiteSpace(source[pos])) pos++;
            else if (kind != '{' && !keepNewline)
            {
                // trim_blocks: the first newline after a block or comment tag is removed.
                if (pos < source.Length && source[pos] == '\n') pos++;
                else if (pos + 1 < source.Length && source[pos] == '\r' && source[pos + 1] == '\n') pos += 2;
            }
        }
        if (text.Length > 0) segments.Add(new Segment(SegmentKind.Text, text.ToString(), []));
        return segments;
    }

    static int NextTagStart(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    static void TrimEnd(StringBuilder text)
    {
        int n = text.Length;
        while (n > 0 && char.IsWhiteSpace(text[n - 1])) n--;
        text.Length = n;
    }

    /// <summary>lstrip_blocks: spaces and tabs between the start of a line and a block tag are removed.</summary>
    static void StripIndentBeforeBlock(StringBuilder text, string source, int tagStart)
    {
        int k = tagStart;
        while (k > 0 && source[k - 1] is ' ' or '\t') k--;
        if (k > 0 && source[k - 1] != '\n') return;
        int strip = Math.Min(tagStart - k, text.Length);
        text.Length -= strip;
    }

    static List<Token> Tokenize(string s, int pos, string closer, out int end, out bool trimRight, out bool keepNewline)
    {
        var tokens = new List<Token>();
        keepNewline = false;
        int depth = 0; // open brackets: a closer inside {...} is a brace, as Jinja's balancing lexer reads it
        while (true)
        {
            while (pos < s.Length && char.IsWhiteSpace(s[pos])) pos++;
            if (pos >= s.Length) throw new JinjaException($"unclosed tag: expected '{closer}'");
            if (depth == 0 && string.CompareOrdinal(s, pos, closer, 0, 2) == 0) { end = pos + 2; trimRight = false; break; }
            if (s[pos] == '-' && string.CompareOrdinal(s, pos + 1, closer, 0, 2) == 0) { end = pos + 3; trimRight = true; break; }
            if (s[pos] == '+' && closer == "%}" && string.CompareOrdinal(s, pos + 1, closer, 0, 2) == 0) { end = pos + 3; trimRight = false; keepNewline = true; break; }
            char c = s[pos];
            if (c is '\'' or '"') { tokens.Add(ReadString(s, ref pos)); continue; }
            // After a '.', digits are an index (foo.0.1), never a float: Jinja's float pattern has (?<!\.).
            if (char.IsDigit(c)) { tokens.Add(tokens.Count > 0 && tokens[^1].Is(".") ? ReadInteger(s, ref pos) : ReadNumber(s, ref pos)); continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < s.Length && (char.IsLetterOrDigit(s[pos]) || s[pos] == '_')) pos++;
                tokens.Add(new Token(TokenKind.Name, s[start..pos]));
                continue;
            }
            var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, pos, o, 0, o.Length) == 0)
                ?? throw new JinjaException($"unexpected character '{c}' in tag");
            tokens.Add(new Token(TokenKind.Operator, op));
            if (op is "(" or "[" or "{") depth++;
            else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
            pos += op.Length;
        }
        tokens.Add(new Token(TokenKind.End, ""));
        return tokens;
    }

    static Token ReadString(string s, ref int pos)
    {
        char quote = s[pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (pos >= s.Length) throw new JinjaException("unterminated string literal");
            char c = s[pos++];
            if (c == quote) break;
            if (c != '\\' || pos >= s.Length) { sb.Append(c); continue; }
            char e = s[pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case '\n': break; // a backslash-newline continues the string
                case 'x' or 'u' or 'U':
                    int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (pos + digits > s.Length || !int.TryParse(s.AsSpan(pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp))
                        throw new JinjaException($"bad \\{e} escape in a string literal");
                    sb.Append(char.ConvertFromUtf32(cp));
                    pos += digits;
                    break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
        var text = sb.ToString();
        return new Token(TokenKind.String, text, text);
    }

    static Token ReadInteger(string s, ref int pos)
    {
        int start = pos;
        while (pos < s.Length && char.IsDigit(s[pos])) pos++;
        return new Token(TokenKind.Integer, s[start..pos], long.Parse(s[start..pos], CultureInfo.InvariantCulture));
    }

    static Token ReadNumber(string s, ref int pos)
    {
        int start = pos;
        while (pos < s.Length && (char.IsDigit(s[pos]) || s[pos] == '_')) pos++;
        bool isFloat = pos + 1 < s.Length && s[pos] == '.' && char.IsDigit(s[pos + 1]);
        if (isFloat) { pos++; while (pos < s.Length && char.IsDigit(s[pos])) pos++; }
        if (pos < s.Length && s[pos] is 'e' or 'E' && pos + 1 < s.Length && (char.IsDigit(s[pos + 1]) || (s[pos + 1] is '+' or '-' && pos + 2 < s.Length && char.IsDigit(s[pos + 2]))))
        {
            isFloat = true;
            pos += 2;
            while (pos < s.Length && char.IsDigit(s[pos])) pos++;
        }
        var text = s[start..pos].Replace("_", "");
        return isFloat
            ? new Token(TokenKind.Float, text, double.Parse(text, CultureInfo.InvariantCulture))
            : new Token(TokenKind.Integer, text, long.Parse(text, CultureInfo.InvariantCulture));
    }
}

/// <summary>The template uses something this Jinja subset does not parse or run.</summary>
public class JinjaException(string message) : Exception(message);

/// <summary>The template itself called <c>raise_exception(message)</c>: the conversation is invalid for this model.</summary>
public sealed class TemplateRaisedException(string message) : JinjaException(message);
