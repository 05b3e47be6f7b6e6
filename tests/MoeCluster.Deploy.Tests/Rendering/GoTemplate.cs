using System.Globalization;
using System.Text;

namespace MoeCluster.Deploy.Tests.Rendering;

/// <summary>
/// Go's text/template, the subset Helm charts use, so the tests can render this chart without a helm binary: text and
/// actions with trim markers and comments; if / else if / else, range (over lists and maps, with $i, $v), with, define,
/// template; pipelines with variables ($x := …, $x = …), field chains (.Values.a.b, $pool.x, (expr).y) and literals.
/// Functions come from <see cref="HelmFunctions"/>. Values are plain .NET objects: Dictionary&lt;string, object?&gt;,
/// List&lt;object?&gt;, string, long, double, bool, null. What Go templates do that this does not (methods, break,
/// continue, block, else with) throws, so an unsupported chart construct fails the test instead of rendering wrongly.
/// </summary>
public sealed class GoTemplate
{
    abstract record Node;
    sealed record Text(string Value) : Node;
    sealed record Action(Pipe Pipe) : Node;
    sealed record If(Pipe Condition, List<Node> Then, List<Node> Else) : Node;
    sealed record With(Pipe Value, List<Node> Body, List<Node> Else) : Node;
    sealed record Range(string? KeyVar, string? ValueVar, Pipe Over, List<Node> Body, List<Node> Else) : Node;
    sealed record Call(string Name, Pipe? Argument) : Node;

    /// <summary>A pipeline: optional variable declaration, then commands joined by |.</summary>
    sealed record Pipe(string? Variable, bool Declare, List<List<Term>> Commands);

    abstract record Term;
    sealed record Literal(object? Value) : Term;
    sealed record Field(Term? Receiver, string[] Path) : Term;   // Receiver null = dot
    sealed record Variable(string Name, string[] Path) : Term;
    sealed record Identifier(string Name) : Term;
    sealed record Nested(Pipe Pipe, string[] Path) : Term;

    readonly Dictionary<string, List<Node>> templates = new(StringComparer.Ordinal);
    public HelmFunctions Functions { get; }

    public GoTemplate(HelmFunctions functions)
    {
        Functions = functions;
        functions.Owner = this;
    }

    /// <summary>Parses a file: its defines are added, its top-level nodes returned under <paramref name="name"/>.</summary>
    public void Add(string name, string source) => templates[name] = Parse(Lex(source));

    public bool Has(string name) => templates.ContainsKey(name);

    public string Execute(string name, object? dot)
    {
        if (!templates.TryGetValue(name, out var nodes)) throw new InvalidOperationException($"template \"{name}\" is not defined");
        var output = new StringBuilder();
        Run(nodes, new Scope(dot, null), output);
        return output.ToString();
    }

    /// <summary>Renders a string as a template with the given dot (Helm's tpl).</summary>
    public string ExecuteInline(string source, object? dot)
    {
        var nodes = Parse(Lex(source));
        var output = new StringBuilder();
        Run(nodes, new Scope(dot, null), output);
        return output.ToString();
    }

    // ---------------------------------------------------------------- lexing: text and action tokens, trims applied

    sealed record Token(bool IsAction, string Body);

    static List<Token> Lex(string source)
    {
        var tokens = new List<Token>();
        int i = 0;
        var pendingText = new StringBuilder();
        while (i < source.Length)
        {
            int open = source.IndexOf("{{", i, StringComparison.Ordinal);
            if (open < 0) { pendingText.Append(source, i, source.Length - i); break; }
            pendingText.Append(source, i, open - i);
            bool trimLeft = open + 2 < source.Length && source[open + 2] == '-' && open + 3 < source.Length && char.IsWhiteSpace(source[open + 3]);
            int bodyStart = open + (trimLeft ? 3 : 2);
            int close = FindClose(source, bodyStart);
            bool trimRight = source[close - 1] == '-' && char.IsWhiteSpace(source[close - 2]);
            string body = source[bodyStart..(trimRight ? close - 1 : close)].Trim();
            if (trimLeft) TrimEnd(pendingText);
            tokens.Add(new Token(false, pendingText.ToString()));
            pendingText.Clear();
            if (!body.StartsWith("/*", StringComparison.Ordinal)) tokens.Add(new Token(true, body));
            i = close + 2;
            if (trimRight) while (i < source.Length && char.IsWhiteSpace(source[i])) i++;
        }
        tokens.Add(new Token(false, pendingText.ToString()));
        return tokens;
    }

    static void TrimEnd(StringBuilder text)
    {
        int n = text.Length;
        while (n > 0 && char.IsWhiteSpace(text[n - 1])) n--;
        text.Length = n;
    }

    static int FindClose(string s, int from)
    {
        for (int i = from; i < s.Length - 1; i++)
        {
            char c = s[i];
            if (c == '"') { for (i++; s[i] != '"'; i++) if (s[i] == '\\') i++; }
            else if (c == '`') i = s.IndexOf('`', i + 1);
            else if (c == '/' && s[i + 1] == '*') i = s.IndexOf("*/", i, StringComparison.Ordinal) + 1;
            else if (c == '}' && s[i + 1] == '}') return i;
        }
        throw new FormatException("unclosed action");
    }

    // ---------------------------------------------------------------- parsing

    int position;
    List<Token> stream = [];

    List<Node> Parse(List<Token> tokens)
    {
        stream = tokens;
        position = 0;
        var nodes = ParseList(out var end);
        if (end is not null) throw new FormatException($"unexpected {{{{{end}}}}}");
        return nodes;
    }

    /// <summary>Nodes until end/else (returned in <paramref name="stop"/>) or the end of input.</summary>
    List<Node> ParseList(out string? stop)
    {
        var nodes = new List<Node>();
        stop = null;
        while (position < stream.Count)
        {
            var t = stream[position++];
            if (!t.IsAction) { if (t.Body.Length > 0) nodes.Add(new Text(t.Body)); continue; }
            var words = t.Body;
            string keyword = words.Split(' ', 2)[0];
            switch (keyword)
            {
                case "end": stop = "end"; return nodes;
                case "else": stop = words; return nodes;
                case "if": nodes.Add(ParseIf(words[2..])); break;
                case "with":
                {
                    var value = ParsePipe(words[4..]);
                    var body = ParseList(out var s);
                    var otherwise = s == "else" ? ParseList(out s) : [];
                    Expect(s, "end", "with");
                    nodes.Add(new With(value, body, otherwise));
                    break;
                }
                case "range":
                {
                    var rest = words[5..].Trim();
                    string? k = null, v = null;
                    int assign = rest.IndexOf(":=", StringComparison.Ordinal);
                    if (assign > 0 && rest.StartsWith('$'))
                    {
                        var vars = rest[..assign].Split(',', StringSplitOptions.TrimEntries);
                        if (vars.Length == 2) (k, v) = (vars[0], vars[1]); else v = vars[0];
                        rest = rest[(assign + 2)..];
                    }
                    var over = ParsePipe(rest);
                    var body = ParseList(out var s);
                    var otherwise = s == "else" ? ParseList(out s) : [];
                    Expect(s, "end", "range");
                    nodes.Add(new Range(k, v, over, body, otherwise));
                    break;
                }
                case "define":
                {
                    string name = Unquote(words[6..].Trim());
                    var body = ParseList(out var s);
                    Expect(s, "end", "define");
                    templates[name] = body;
                    break;
                }
                case "template":
                {
                    var rest = words[8..].Trim();
                    int q = rest.IndexOf('"', 1);
                    nodes.Add(new Call(Unquote(rest[..(q + 1)]), rest.Length > q + 1 ? ParsePipe(rest[(q + 1)..]) : null));
                    break;
                }
                case "block" or "break" or "continue":
                    throw new NotSupportedException($"{{{{{keyword}}}}} is not supported by the test renderer");
                default: nodes.Add(new Action(ParsePipe(words))); break;
            }
        }
        return nodes;
    }

    Node ParseIf(string condition)
    {
        var pipe = ParsePipe(condition);
        var then = ParseList(out var s);
        List<Node> otherwise = [];
        if (s == "else") { otherwise = ParseList(out s); Expect(s, "end", "if"); }
        else if (s is not null && s.StartsWith("else if ", StringComparison.Ordinal)) otherwise = [ParseIf(s[8..])];
        else Expect(s, "end", "if");
        return new If(pipe, then, otherwise);
    }

    static void Expect(string? stop, string expected, string block)
    {
        if (stop != expected) throw new FormatException($"{block} closed by {{{{{stop ?? "end of file"}}}}}, expected {expected}");
    }

    static string Unquote(string s) => s.StartsWith('"') ? System.Text.Json.JsonSerializer.Deserialize<string>(s)! : s.Trim('`');

    Pipe ParsePipe(string text)
    {
        var lexer = new TermLexer(text);
        var pipe = ParsePipe(lexer);
        if (!lexer.AtEnd) throw new FormatException($"unexpected '{lexer.Rest}' in {{{{{text}}}}}");
        return pipe;
    }

    static Pipe ParsePipe(TermLexer lexer)
    {
        string? variable = null;
        bool declare = false;
        var save = lexer.Position;
        if (lexer.PeekVariable() is { } v)
        {
            lexer.Next();
            lexer.SkipSpace();
            if (lexer.TryConsume(":=")) { variable = v; declare = true; }
            else if (lexer.TryConsume("=") ) { variable = v; }
            else lexer.Position = save;
        }
        var commands = new List<List<Term>> { new() };
        while (true)
        {
            lexer.SkipSpace();
            if (lexer.AtEnd || lexer.PeekChar() == ')') break;
            if (lexer.TryConsume("|")) { commands.Add([]); continue; }
            commands[^1].Add(ParseTerm(lexer));
        }
        return new Pipe(variable, declare, commands);
    }

    static Term ParseTerm(TermLexer lexer)
    {
        char c = lexer.PeekChar();
        Term term;
        if (c == '(')
        {
            lexer.Position++;
            var inner = ParsePipe(lexer);
            if (!lexer.TryConsume(")")) throw new FormatException("unclosed (");
            term = new Nested(inner, lexer.ReadFieldPath());
        }
        else if (c == '"') term = new Literal(lexer.ReadString());
        else if (c == '`') term = new Literal(lexer.ReadRaw());
        else if (c == '.') term = new Field(null, lexer.ReadFieldPath());
        else if (c == '$') { var name = lexer.Next(); term = new Variable(name, lexer.ReadFieldPath()); }
        else if (char.IsDigit(c) || c == '-' || c == '+')
        {
            var number = lexer.Next();
            term = new Literal(number.Contains('.') || number.Contains('e') ? double.Parse(number, CultureInfo.InvariantCulture) : long.Parse(number, CultureInfo.InvariantCulture));
        }
        else
        {
            var word = lexer.Next();
            term = word switch { "true" => new Literal(true), "false" => new Literal(false), "nil" => new Literal(null), _ => new Identifier(word) };
        }
        return term;
    }

    sealed class TermLexer(string text)
    {
        public int Position;
        public bool AtEnd { get { SkipSpace(); return Position >= text.Length; } }
        public string Rest => text[Position..];
        public char PeekChar() { SkipSpace(); return Position < text.Length ? text[Position] : '\0'; }
        public void SkipSpace() { while (Position < text.Length && char.IsWhiteSpace(text[Position])) Position++; }

        public bool TryConsume(string s)
        {
            SkipSpace();
            if (string.CompareOrdinal(text, Position, s, 0, s.Length) != 0) return false;
            if (s == "=" && Position + 1 < text.Length && text[Position + 1] == '=') return false;
            Position += s.Length;
            return true;
        }

        public string? PeekVariable()
        {
            SkipSpace();
            if (Position >= text.Length || text[Position] != '$') return null;
            int end = Position + 1;
            while (end < text.Length && (char.IsLetterOrDigit(text[end]) || text[end] == '_')) end++;
            return text[Position..end];
        }

        /// <summary>A word: identifier, $variable or number.</summary>
        public string Next()
        {
            SkipSpace();
            int start = Position;
            if (Position < text.Length && text[Position] is '$' or '-' or '+') Position++;
            while (Position < text.Length && (char.IsLetterOrDigit(text[Position]) || text[Position] is '_' or '.' && !(text[start] == '$'))) Position++;
            return text[start..Position];
        }

        public string[] ReadFieldPath()
        {
            var parts = new List<string>();
            while (Position < text.Length && text[Position] == '.')
            {
                Position++;
                int start = Position;
                while (Position < text.Length && (char.IsLetterOrDigit(text[Position]) || text[Position] == '_')) Position++;
                if (Position > start) parts.Add(text[start..Position]);
            }
            return parts.ToArray();
        }

        public string ReadString()
        {
            int start = Position++;
            while (text[Position] != '"') { if (text[Position] == '\\') Position++; Position++; }
            Position++;
            return System.Text.Json.JsonSerializer.Deserialize<string>(text[start..Position])!;
        }

        public string ReadRaw()
        {
            int end = text.IndexOf('`', Position + 1);
            var s = text[(Position + 1)..end];
            Position = end + 1;
            return s;
        }
    }

    // ---------------------------------------------------------------- execution

    sealed class Scope(object? dot, Scope? outer)
    {
        readonly Scope? parent = outer;
        public object? Dot { get; } = dot;
        readonly Dictionary<string, object?> variables = new();
        public void Declare(string name, object? value) => variables[name] = value;

        public void Assign(string name, object? value)
        {
            for (var s = this; s is not null; s = s.parent)
                if (s.variables.ContainsKey(name)) { s.variables[name] = value; return; }
            throw new InvalidOperationException($"variable {name} assigned before it was declared");
        }

        public object? Get(string name)
        {
            for (var s = this; s is not null; s = s.parent)
                if (s.variables.TryGetValue(name, out var v)) return v;
            if (name == "$") return Root;
            throw new InvalidOperationException($"undefined variable {name}");
        }

        public object? Root => parent is null ? Dot : parent.Root;
    }

    void Run(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case Text t: output.Append(t.Value); break;
                case Action a:
                {
                    var value = Eval(a.Pipe, scope);
                    if (a.Pipe.Variable is null) output.Append(HelmFunctions.Print(value));
                    break;
                }
                case If i:
                    Run(HelmFunctions.Truthy(Eval(i.Condition, scope)) ? i.Then : i.Else, new Scope(scope.Dot, scope), output);
                    break;
                case With w:
                {
                    var value = Eval(w.Value, scope);
                    if (HelmFunctions.Truthy(value)) Run(w.Body, new Scope(value, scope), output);
                    else Run(w.Else, new Scope(scope.Dot, scope), output);
                    break;
                }
                case Range r:
                {
                    var over = Eval(r.Over, scope);
                    var items = over switch
                    {
                        IDictionary<string, object?> map => map.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => ((object?)e.Key, e.Value)).ToList(),
                        IList<object?> list => list.Select((v, i) => ((object?)(long)i, v)).ToList(),
                        long n => Enumerable.Range(0, (int)n).Select(i => ((object?)(long)i, (object?)(long)i)).ToList(),
                        null => [],
                        _ => throw new InvalidOperationException($"range over {over.GetType().Name}"),
                    };
                    if (items.Count == 0) { Run(r.Else, new Scope(scope.Dot, scope), output); break; }
                    foreach (var (k, v) in items)
                    {
                        var inner = new Scope(v, scope);
                        if (r.KeyVar is not null) inner.Declare(r.KeyVar, k);
                        if (r.ValueVar is not null) inner.Declare(r.ValueVar, v);
                        Run(r.Body, inner, output);
                    }
                    break;
                }
                case Call c: output.Append(Include(c.Name, c.Argument is null ? null : Eval(c.Argument, scope))); break;
            }
        }
    }

    public string Include(string name, object? dot)
    {
        if (!templates.TryGetValue(name, out var nodes)) throw new InvalidOperationException($"template \"{name}\" is not defined");
        var output = new StringBuilder();
        Run(nodes, new Scope(dot, null), output);
        return output.ToString();
    }

    object? Eval(Pipe pipe, Scope scope)
    {
        object? value = null;
        bool first = true;
        foreach (var command in pipe.Commands)
        {
            value = EvalCommand(command, scope, first ? null : new[] { value });
            first = false;
        }
        if (pipe.Variable is { } v)
        {
            if (pipe.Declare) scope.Declare(v, value); else scope.Assign(v, value);
        }
        return value;
    }

    object? EvalCommand(List<Term> command, Scope scope, object?[]? piped)
    {
        if (command.Count == 0) throw new FormatException("empty command");
        if (command[0] is Identifier id)
        {
            var args = command.Skip(1).Select(t => EvalTerm(t, scope)).ToList();
            if (piped is not null) args.AddRange(piped);
            // and/or short-circuit on their arguments' values like Go's
            return Functions.Call(id.Name, args);
        }
        var head = EvalTerm(command[0], scope);
        if (head is Func<List<object?>, object?> method)   // .Files.Get "path"
        {
            var args = command.Skip(1).Select(t => EvalTerm(t, scope)).ToList();
            if (piped is not null) args.AddRange(piped);
            return method(args);
        }
        if (command.Count > 1 || piped is not null) throw new FormatException("a value cannot take arguments");
        return head;
    }

    object? EvalTerm(Term term, Scope scope) => term switch
    {
        Literal l => l.Value,
        Field f => Walk(scope.Dot, f.Path),
        Variable v => Walk(scope.Get(v.Name), v.Path),
        Nested n => Walk(Eval(n.Pipe, scope), n.Path),
        Identifier i => Functions.Call(i.Name, []),
        _ => throw new InvalidOperationException(),
    };

    static object? Walk(object? value, string[] path)
    {
        foreach (var key in path)
        {
            value = value switch
            {
                IDictionary<string, object?> map => map.TryGetValue(key, out var v) ? v : null,
                null => null,
                _ => throw new InvalidOperationException($"cannot read field {key} of a {value.GetType().Name}"),
            };
        }
        return value;
    }
}
