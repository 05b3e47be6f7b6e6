using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>A compiled template of the Jinja that chat templates use: text, <c>{{ }}</c>, <c>if/elif/else</c>,
/// <c>for</c> (with <c>loop.*</c>, an <c>if</c> filter, <c>else</c>, <c>break</c> and <c>continue</c>), <c>set</c>
/// (names, tuples, <c>ns.attr</c>, block form), <c>macro</c> and <c>call</c>, <c>filter</c> blocks, <c>raw</c>,
/// <c>generation</c>, comments and whitespace control. Anything else — an unknown tag, filter or test — throws
/// <see cref="JinjaException"/> at compile time, naming it.</summary>
public sealed class JinjaTemplate
{
    readonly IReadOnlyList<Node> body;

    JinjaTemplate(IReadOnlyList<Node> body) => this.body = body;

    public static JinjaTemplate Compile(string source)
    {
        var reader = new SegmentReader(JinjaLexer.Segment(source));
        var nodes = reader.ParseBlock(out var stop);
        if (stop is not null) throw new JinjaException($"unexpected '{{% {stop.Value.Keyword} %}}' without its opening tag");
        return new JinjaTemplate(nodes);
    }

    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var scope = new JinjaScope();
        foreach (var (k, v) in variables) scope.Set(k, v);
        var output = new StringBuilder();
        try { RenderAll(body, scope, output); }
        catch (LoopControl) { throw new JinjaException("'break' or 'continue' outside a loop"); }
        catch (InvalidOperationException e) when (e.InnerException is JinjaException inner) { throw inner; } // from List.Sort
        catch (Exception e) when (e is not JinjaException)
        {
            // A value of the wrong shape (a missing argument, a number where a list belongs): the template failed on
            // this input, which is the client's to fix, not a server fault.
            throw new JinjaException($"the template failed on this input: {e.Message}");
        }
        return output.ToString();
    }

    static void RenderAll(IReadOnlyList<Node> nodes, JinjaScope scope, StringBuilder output)
    {
        foreach (var n in nodes) n.Render(scope, output);
    }

    abstract record Node
    {
        public abstract void Render(JinjaScope scope, StringBuilder output);
    }

    sealed class LoopControl(bool isBreak) : Exception
    {
        public bool IsBreak { get; } = isBreak;
    }

    sealed record TextNode(string Text) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) => output.Append(Text);
    }

    sealed record OutputNode(Expr Value) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) => output.Append(JinjaValues.ToText(Value.Eval(scope)));
    }

    sealed record LoopControlNode(bool IsBreak) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) => throw new LoopControl(IsBreak);
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
            var source = Iterable.Eval(scope);
            var items = (source is IDictionary<string, object?> d ? d.Keys.Cast<object?>() : JinjaValues.Iterate(source)).ToList();
            if (Filter is not null)
                items = items.Where(item => { var s = new JinjaScope(scope); Bind(s, item); return JinjaValues.Truthy(Filter.Eval(s)); }).ToList();
            if (items.Count == 0) { RenderAll(Else, scope, output); return; }
            int depth = scope.Lookup("loop") is LoopInfo outer ? (int)(long)outer.Get("depth")! + 1 : 1;
            for (int i = 0; i < items.Count; i++)
            {
                var inner = new JinjaScope(scope);
                Bind(inner, items[i]);
                inner.Set("loop", new LoopInfo(i, items.Count, i > 0 ? items[i - 1] : null, i + 1 < items.Count ? items[i + 1] : null, depth));
                try { RenderAll(Body, inner, output); }
                catch (LoopControl control) when (control.IsBreak) { break; }
                catch (LoopControl) { }
            }
        }

        void Bind(JinjaScope s, object? item) => Assign(s, Targets, item);
    }

    static void Assign(JinjaScope s, IReadOnlyList<string> targets, object? value)
    {
        if (targets.Count == 1) { s.Set(targets[0], value); return; }
        var parts = value as IList<object?> ?? (value is string str ? JinjaValues.Iterate(str).ToList() : throw new JinjaException($"cannot unpack non-iterable {JinjaValues.TypeName(value)} object"));
        if (parts.Count != targets.Count) throw new JinjaException($"not enough values to unpack (expected {targets.Count}, got {parts.Count})");
        for (int t = 0; t < targets.Count; t++) s.Set(targets[t], parts[t]);
    }

    sealed record SetNode(IReadOnlyList<string> Names, string? Attribute, Expr? Value, IReadOnlyList<Node>? Block, IReadOnlyList<(string, IReadOnlyList<Expr>)> BlockFilters) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            object? value;
            if (Block is not null)
            {
                var sb = new StringBuilder();
                RenderAll(Block, scope, sb);
                value = sb.ToString();
                foreach (var (filter, args) in BlockFilters) value = JinjaValues.ApplyFilter(filter, value, args.Select(a => a.Eval(scope)).ToList(), new Dictionary<string, object?>());
            }
            else value = Value!.Eval(scope);
            if (Attribute is null) { Assign(scope, Names, value); return; }
            if (scope.Lookup(Names[0]) is not Namespace ns) throw new JinjaException($"cannot assign attribute on non-namespace object '{Names[0]}'");
            ns[Attribute] = value;
        }
    }

    sealed record FilterNode(IReadOnlyList<(string Name, IReadOnlyList<Expr> Args)> Filters, IReadOnlyList<Node> Body) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            var sb = new StringBuilder();
            RenderAll(Body, scope, sb);
            object? value = sb.ToString();
            foreach (var (name, args) in Filters) value = JinjaValues.ApplyFilter(name, value, args.Select(a => a.Eval(scope)).ToList(), new Dictionary<string, object?>());
            output.Append(JinjaValues.ToText(value));
        }
    }

    sealed record MacroNode(string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Node> Body) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output) =>
            scope.Set(Name, new Macro(Name, Parameters.Select(p => p.Name).ToList(), (args, kwargs, caller) =>
            {
                // A macro sees the template's top level (where macros and the render variables live), not the caller's locals.
                var inner = new JinjaScope(scope.Root == scope ? scope : scope.Root);
                var extra = new List<object?>();
                for (int i = 0; i < args.Count; i++)
                {
                    if (i < Parameters.Count) inner.Set(Parameters[i].Name, args[i]);
                    else extra.Add(args[i]);
                }
                for (int i = args.Count; i < Parameters.Count; i++)
                {
                    var (name, fallback) = Parameters[i];
                    inner.Set(name, kwargs.TryGetValue(name, out var given) ? given : fallback is null ? Undefined.Instance : fallback.Eval(inner));
                }
                inner.Set("varargs", extra);
                inner.Set("kwargs", kwargs.Where(k => Parameters.All(p => p.Name != k.Key)).ToDictionary(k => k.Key, k => k.Value));
                if (caller is not null) inner.Set("caller", caller);
                var sb = new StringBuilder();
                try { RenderAll(Body, inner, sb); }
                catch (LoopControl) { throw new JinjaException($"'break' or 'continue' outside a loop in macro '{Name}'"); }
                return sb.ToString();
            }));
    }

    sealed record CallBlockNode(Expr Call, IReadOnlyList<string> CallerParameters, IReadOnlyList<Node> Body) : Node
    {
        public override void Render(JinjaScope scope, StringBuilder output)
        {
            if (Call is not Call { Callee: var callee } call) throw new JinjaException("'{% call %}' needs a macro call");
            if (callee.Eval(scope) is not Macro macro) throw new JinjaException("'{% call %}' needs a macro");
            JinjaFunction caller = (args, _) =>
            {
                var inner = new JinjaScope(scope);
                for (int i = 0; i < CallerParameters.Count; i++) inner.Set(CallerParameters[i], i < args.Count ? args[i] : Undefined.Instance);
                var sb = new StringBuilder();
                RenderAll(Body, inner, sb);
                return sb.ToString();
            };
            var values = call.Args.Select(a => a.Eval(scope)).ToList();
            var kwargs = call.Kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(scope));
            output.Append(macro.Call(values, kwargs, caller));
        }
    }

    sealed class SegmentReader(IReadOnlyList<Segment> segments)
    {
        int pos;

        static readonly HashSet<string> Closers = ["endif", "elif", "else", "endfor", "endset", "endgeneration", "endmacro", "endcall", "endfilter"];

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
                if (seg.Kind == SegmentKind.Output) { var e = p.ParseTupleOrExpression(); p.ExpectEnd(); nodes.Add(new OutputNode(e)); continue; }
                string keyword = p.ExpectName();
                switch (keyword)
                {
                    case "if": nodes.Add(ParseIf(p)); break;
                    case "for": nodes.Add(ParseFor(p)); break;
                    case "set": nodes.Add(ParseSet(p)); break;
                    case "macro": nodes.Add(ParseMacro(p)); break;
                    case "call": nodes.Add(ParseCall(p)); break;
                    case "filter": nodes.Add(new FilterNode(ParseFilterChain(p), ParseUntil("endfilter"))); break;
                    case "break" or "continue": p.ExpectEnd(); nodes.Add(new LoopControlNode(keyword == "break")); break;
                    case "generation":
                        // transformers' {% generation %} marks assistant text for masks; it renders its body unchanged.
                        p.ExpectEnd();
                        nodes.AddRange(ParseUntil("endgeneration"));
                        break;
                    case var k when Closers.Contains(k):
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
            var tag = stop.Value.Tag;
            if (!tag.AtEnd && tag.Peek.Kind == TokenKind.Name) tag.Next(); // {% endmacro name %}
            tag.ExpectEnd();
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
            var targets = ParseTargets(p);
            p.Expect("in");
            var iterable = p.ParseOr();
            if (p.Peek.Is(","))
            {
                var items = new List<Expr> { iterable };
                while (p.Accept(",")) items.Add(p.ParseOr());
                iterable = new ListExpr(items, Tuple: true);
            }
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

        static List<string> ParseTargets(ExpressionParser p)
        {
            bool parenthesised = p.Accept("(");
            var targets = new List<string> { p.ExpectName() };
            while (p.Accept(",")) { if (p.Peek.Is(")") || p.Peek.Is("in") || p.Peek.Is("=")) break; targets.Add(p.ExpectName()); }
            if (parenthesised) p.Expect(")");
            return targets;
        }

        Node ParseSet(ExpressionParser p)
        {
            var names = ParseTargets(p);
            string? attribute = names.Count == 1 && p.Accept(".") ? p.ExpectName() : null;
            if (p.AtEnd || p.Peek.Is("|"))
            {
                var filters = p.Accept("|") ? ParseFilterChainAfterBar(p) : [];
                return new SetNode(names, attribute, null, ParseUntil("endset"), filters);
            }
            p.Expect("=");
            var value = p.ParseTupleOrExpression();
            p.ExpectEnd();
            return new SetNode(names, attribute, value, null, []);
        }

        Node ParseMacro(ExpressionParser p)
        {
            string name = p.ExpectName();
            var parameters = new List<(string, Expr?)>();
            p.Expect("(");
            while (!p.Accept(")"))
            {
                string parameter = p.ExpectName();
                parameters.Add((parameter, p.Accept("=") ? p.Parse() : null));
                if (!p.Peek.Is(")")) p.Expect(",");
            }
            p.ExpectEnd();
            return new MacroNode(name, parameters, ParseUntil("endmacro"));
        }

        Node ParseCall(ExpressionParser p)
        {
            var callerParameters = new List<string>();
            if (p.Accept("("))
            {
                while (!p.Accept(")")) { callerParameters.Add(p.ExpectName()); if (!p.Peek.Is(")")) p.Expect(","); }
            }
            var call = p.Parse();
            p.ExpectEnd();
            return new CallBlockNode(call, callerParameters, ParseUntil("endcall"));
        }

        static List<(string, IReadOnlyList<Expr>)> ParseFilterChain(ExpressionParser p)
        {
            var chain = new List<(string, IReadOnlyList<Expr>)>();
            do
            {
                string name = p.ExpectName();
                if (!JinjaValues.FilterNames.Contains(name)) throw new JinjaException($"no filter named '{name}'");
                chain.Add((name, p.Accept("(") ? p.ParseCallArguments() : []));
            }
            while (p.Accept("|"));
            p.ExpectEnd();
            return chain;
        }

        static List<(string, IReadOnlyList<Expr>)> ParseFilterChainAfterBar(ExpressionParser p) => ParseFilterChain(p);
    }
}

/// <summary>A <c>{% macro %}</c>: called with positional and keyword arguments (and a caller for <c>{% call %}</c>),
/// it renders its body to a string.</summary>
public sealed class Macro(string name, IReadOnlyList<string> parameters, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, JinjaFunction?, string> body)
{
    public string Name { get; } = name;
    public IReadOnlyList<string> Parameters { get; } = parameters;

    public string Call(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, JinjaFunction? caller = null) => body(args, kwargs, caller);
}
