using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>A compiled template of the Jinja subset chat templates use: text, <c>{{ }}</c>, <c>if/elif/else</c>,
/// <c>for</c> (with <c>loop.*</c>, an <c>if</c> filter and <c>else</c>), <c>set</c> (also <c>ns.attr</c> and block
/// form), comments and whitespace control. Anything else throws <see cref="JinjaException"/> at compile time.</summary>
public sealed class JinjaTemplate
{
    readonly IReadOnlyList<Node> body;

    JinjaTemplate(IReadOnlyList<Node> body) => this.body = body;

    public static JinjaTemplate Compile(string source)
    {
        var reader = new SegmentReader(JinjaLexer.Segment(source));
        var nodes = reader.ParseBlock(out var stop);
        if (stop is not null) throw new JinjaException($"unexpected '{{% {stop} %}}' without its opening tag");
        return new JinjaTemplate(nodes);
    }

    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var scope = new JinjaScope();
        foreach (var (k, v) in variables) scope.Set(k, v);
        var output = new StringBuilder();
        foreach (var node in body) node.Render(scope, output);
        return output.ToString();
    }

    abstract record Node
    {
        public abstract void Render(JinjaScope scope, StringBuilder output);

        protected static void RenderAll(IReadOnlyList<Node> nodes, JinjaScope scope, StringBuilder output)
        {
            foreach (var n in nodes) n.Render(scope, output);
        }
    }

    sealed record TextNode(string Text) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) => output.Append(Text);
    }

    sealed record OutputNode(Expr Value) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) => output.Append(JinjaValues.ToText(Value.Eval(scope)));
    }

    sealed record IfNode(IReadOnlyList<(Expr Condition, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node> Else) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            foreach (var (condition, branch) in Branches)
                if (JinjaValues.Truthy(condition.Eval(scope))) { RenderAll(branch, scope, output); return; }
            RenderAll(Else, scope, output);
        }
    }

    sealed record ForNode(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node> Else) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            var items = JinjaValues.Iterate(Iterable.Eval(scope)).ToList();
            if (Filter is not null)
                items = items.Where(item => { var s = new JinjaScope(scope); Bind(s, item); return JinjaValues.Truthy(Filter.Eval(s)); }).ToList();
            if (items.Count == 0) { RenderAll(Else, scope, output); return; }
            for (int i = 0; i < items.Count; i++)
            {
                var inner = new JinjaScope(scope);
                Bind(inner, items[i]);
                inner.Set("loop", new LoopInfo(i, items.Count, i > 0 ? items[i - 1] : null, i + 1 < items.Count ? items[i + 1] : null));
                RenderAll(Body, inner, output);
            }
        }

        void Bind(JinjaScope s, object? item)
        {
            if (Targets.Count == 1) { s.Set(Targets[0], item); return; }
            var parts = item as IList<object?> ?? throw new JinjaException($"cannot unpack {JinjaValues.TypeName(item)} into {Targets.Count} names");
            if (parts.Count != Targets.Count) throw new JinjaException($"cannot unpack {parts.Count} values into {Targets.Count} names");
            for (int t = 0; t < Targets.Count; t++) s.Set(Targets[t], parts[t]);
        }
    }

    sealed record SetNode(string Name, string? Attribute, Expr? Value, IReadOnlyList<Node>? Block) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            object? value;
            if (Block is not null) { var sb = new StringBuilder(); RenderAll(Block, scope, sb); value = sb.ToString(); }
            else value = Value!.Eval(scope);
            if (Attribute is null) { scope.Set(Name, value); return; }
            if (scope.Lookup(Name) is not Namespace ns) throw new JinjaException($"'{Name}.{Attribute}' can only be set on a namespace()");
            ns[Attribute] = value;
        }
    }

    sealed class SegmentReader(IReadOnlyList<Segment> segments)
    {
        int pos;

        /// <summary>Parses nodes until a closing/continuing tag (endif, elif, else, endfor, endset...) and returns it in
        /// <paramref name="stop"/> with its parser positioned after the keyword; null at the end of the template.</summary>
        public List<Node> ParseBlock(out (string Keyword, ExpressionParser Tag)? stop)
        {
            var nodes = new List<Node>();
            while (pos < segments.Count)
            {
                var seg = segments[pos++];
                if (seg.Kind == SegmentKind.Text) { nodes.Add(new TextNode(seg.Text)); continue; }
                var p = new ExpressionParser(seg.Tokens);
                if (seg.Kind == SegmentKind.Output) { var e = p.Parse(); p.ExpectEnd(); nodes.Add(new OutputNode(e)); continue; }
                string keyword = p.ExpectName();
                switch (keyword)
                {
                    case "if": nodes.Add(ParseIf(p)); break;
                    case "for": nodes.Add(ParseFor(p)); break;
                    case "set": nodes.Add(ParseSet(p)); break;
                    case "generation":
                        // transformers' {% generation %} marks assistant text for masks; it renders its body unchanged.
                        p.ExpectEnd();
                        nodes.AddRange(ParseUntil("endgeneration"));
                        break;
                    case "endif" or "elif" or "else" or "endfor" or "endset" or "endgeneration":
                        stop = (keyword, p);
                        return nodes;
                    default: throw new JinjaException($"'{{% {keyword} %}}' is not supported");
                }
            }
            stop = null;
            return nodes;
        }

        List<Node> ParseUntil(string end)
        {
            var nodes = ParseBlock(out var stop);
            if (stop?.Keyword != end) throw new JinjaException($"expected '{{% {end} %}}' but found {(stop is null ? "the end of the template" : $"'{{% {stop.Value.Keyword} %}}'")}");
            stop.Value.Tag.ExpectEnd();
            return nodes;
        }

        Node ParseIf(ExpressionParser p)
        {
            var branches = new List<(Expr, IReadOnlyList<Node>)>();
            var condition = p.Parse();
            p.ExpectEnd();
            while (true)
            {
                var body = ParseBlock(out var stop);
                branches.Add((condition, body));
                switch (stop?.Keyword)
                {
                    case "elif":
                        condition = stop.Value.Tag.Parse();
                        stop.Value.Tag.ExpectEnd();
                        continue;
                    case "else":
                        stop.Value.Tag.ExpectEnd();
                        return new IfNode(branches, ParseUntil("endif"));
                    case "endif":
                        stop.Value.Tag.ExpectEnd();
                        return new IfNode(branches, []);
                    default:
                        throw new JinjaException("'{% if %}' is not closed by '{% endif %}'");
                }
            }
        }

        Node ParseFor(ExpressionParser p)
        {
            var targets = new List<string> { p.ExpectName() };
            while (p.Accept(",")) targets.Add(p.ExpectName());
            p.Expect("in");
            var iterable = p.ParseOr();
            Expr? filter = p.Accept("if") ? p.ParseOr() : null;
            if (p.Peek.Is("recursive")) throw new JinjaException("recursive loops are not supported");
            p.ExpectEnd();
            var body = ParseBlock(out var stop);
            if (stop?.Keyword == "else")
            {
                stop.Value.Tag.ExpectEnd();
                return new ForNode(targets, iterable, filter, body, ParseUntil("endfor"));
            }
            if (stop?.Keyword != "endfor") throw new JinjaException("'{% for %}' is not closed by '{% endfor %}'");
            stop.Value.Tag.ExpectEnd();
            return new ForNode(targets, iterable, filter, body, []);
        }

        Node ParseSet(ExpressionParser p)
        {
            string name = p.ExpectName();
            string? attribute = p.Accept(".") ? p.ExpectName() : null;
            if (p.AtEnd) return new SetNode(name, attribute, null, ParseUntil("endset"));
            p.Expect("=");
            var value = p.Parse();
            p.ExpectEnd();
            return new SetNode(name, attribute, value, null);
        }
    }
}
