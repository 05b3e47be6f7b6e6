namespace MoeCluster.Node.Chat.Jinja;

/// <summary>An expression inside <c>{{ }}</c> or a tag.</summary>
public abstract record Expr
{
    public abstract object? Eval(JinjaScope scope);
}

sealed record Literal(object? Value) : Expr
{
    public override object? Eval(JinjaScope scope) => Value;
}

sealed record Variable(string Name) : Expr
{
    public override object? Eval(JinjaScope scope) => scope.Lookup(Name);
}

sealed record ListExpr(IReadOnlyList<Expr> Items, bool Tuple = false) : Expr
{
    public override object? Eval(JinjaScope scope)
    {
        var items = Items.Select(i => i.Eval(scope)).ToList();
        return Tuple ? new JinjaTuple(items) : items;
    }
}

sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items) : Expr
{
    public override object? Eval(JinjaScope scope)
    {
        var d = new Dictionary<string, object?>();
        foreach (var (k, v) in Items) d[JinjaValues.ToText(k.Eval(scope))] = v.Eval(scope);
        return d;
    }
}

sealed record Attribute(Expr Target, string Name) : Expr
{
    public override object? Eval(JinjaScope scope) => JinjaValues.GetItem(Target.Eval(scope), Name);
}

sealed record Index(Expr Target, Expr Key) : Expr
{
    public override object? Eval(JinjaScope scope) => JinjaValues.GetItem(Target.Eval(scope), Key.Eval(scope));
}

sealed record Slice(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr
{
    public override object? Eval(JinjaScope scope) =>
        JinjaValues.Slice(Target.Eval(scope), Start?.Eval(scope), Stop?.Eval(scope), Step?.Eval(scope));
}

sealed record Unary(string Op, Expr Operand) : Expr
{
    public override object? Eval(JinjaScope scope)
    {
        var v = Operand.Eval(scope);
        return Op switch
        {
            "not" => !JinjaValues.Truthy(v),
            "-" => v switch { long l => (object)(-l), double d => -d, bool b => b ? -1L : 0L, _ => throw new JinjaException($"bad operand type for unary -: '{JinjaValues.TypeName(v)}'") },
            "+" => v switch { bool b => b ? 1L : 0L, long or double => v, _ => throw new JinjaException($"bad operand type for unary +: '{JinjaValues.TypeName(v)}'") },
            _ => v,
        };
    }
}

sealed record Binary(string Op, Expr Left, Expr Right) : Expr
{
    public override object? Eval(JinjaScope scope)
    {
        if (Op == "and") { var l = Left.Eval(scope); return JinjaValues.Truthy(l) ? Right.Eval(scope) : l; }
        if (Op == "or") { var l = Left.Eval(scope); return JinjaValues.Truthy(l) ? l : Right.Eval(scope); }
        return JinjaValues.Binary(Op, Left.Eval(scope), Right.Eval(scope));
    }
}

sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr
{
    public override object? Eval(JinjaScope scope) =>
        JinjaValues.Truthy(Condition.Eval(scope)) ? Then.Eval(scope) : Else?.Eval(scope) ?? Undefined.Instance;
}

/// <summary><c>*items</c> in a call: the items become positional arguments.</summary>
sealed record Splat(Expr Items) : Expr
{
    public override object? Eval(JinjaScope scope) => Items.Eval(scope);
}

sealed record Call(Expr Callee, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs) : Expr
{
    public static List<object?> Arguments(IReadOnlyList<Expr> args, JinjaScope scope)
    {
        var values = new List<object?>();
        foreach (var a in args)
        {
            if (a is Splat splat) values.AddRange(JinjaValues.Iterate(splat.Eval(scope)));
            else values.Add(a.Eval(scope));
        }
        return values;
    }

    public static Dictionary<string, object?> KeywordArguments(IReadOnlyList<(string Name, Expr Value)> kwargs, JinjaScope scope)
    {
        var values = new Dictionary<string, object?>();
        foreach (var (name, value) in kwargs)
        {
            if (name != "**") { values[name] = value.Eval(scope); continue; }
            if (value.Eval(scope) is IDictionary<string, object?> more) foreach (var (k, v) in more) values[k] = v;
            else throw new JinjaException("argument after ** must be a mapping");
        }
        return values;
    }

    public override object? Eval(JinjaScope scope)
    {
        var args = Arguments(Args, scope);
        var kwargs = KeywordArguments(Kwargs, scope);
        if (Callee is Attribute a) return JinjaValues.CallMethod(a.Target.Eval(scope), a.Name, args, kwargs);
        return Callee.Eval(scope) switch
        {
            JinjaFunction f => f(args, kwargs),
            Macro m => m.Call(args, kwargs),
            Undefined => throw new JinjaException($"'{Describe(Callee)}' is undefined"),
            var other => throw new JinjaException($"'{JinjaValues.TypeName(other)}' object ('{Describe(Callee)}') is not callable"),
        };
    }

    static string Describe(Expr e) => e is Variable v ? v.Name : e.GetType().Name;
}

sealed record Filter(Expr Target, string Name, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs) : Expr
{
    public override object? Eval(JinjaScope scope) =>
        JinjaValues.ApplyFilter(Name, Target.Eval(scope), Call.Arguments(Args, scope), Call.KeywordArguments(Kwargs, scope));
}

sealed record Test(Expr Target, string Name, bool Negated, IReadOnlyList<Expr> Args) : Expr
{
    public override object? Eval(JinjaScope scope) =>
        JinjaValues.ApplyTest(Name, Target.Eval(scope), Args.Select(a => a.Eval(scope)).ToList()) != Negated;
}

public delegate object? JinjaFunction(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs);

/// <summary>Recursive-descent parser for Jinja expressions, with Jinja's precedence (filters bind tighter than
/// arithmetic, tests sit with comparisons, <c>x if c else y</c> loosest).</summary>
public sealed class ExpressionParser(IReadOnlyList<Token> tokens)
{
    int pos;

    public Token Peek => tokens[pos];
    public Token Next() => tokens[pos++];
    public bool AtEnd => Peek.Kind == TokenKind.End;

    public bool Accept(string op)
    {
        if (!Peek.Is(op)) return false;
        pos++;
        return true;
    }

    public void Expect(string op)
    {
        if (!Accept(op)) throw new JinjaException($"expected '{op}' but found '{Peek}'");
    }

    public string ExpectName()
    {
        var t = Next();
        return t.Kind == TokenKind.Name ? t.Text : throw new JinjaException($"expected a name but found '{t}'");
    }

    public void ExpectEnd()
    {
        if (!AtEnd) throw new JinjaException($"unexpected '{Peek}' at end of tag");
    }

    /// <summary>An expression without the <c>if/else</c> form (for <c>for x in y if cond</c>).</summary>
    public Expr ParseOr()
    {
        var left = ParseAnd();
        while (Accept("or")) left = new Binary("or", left, ParseAnd());
        return left;
    }

    /// <summary>An expression, or a bare tuple of them (<c>a, b</c>) where Jinja allows one (set, for, output).</summary>
    public Expr ParseTupleOrExpression()
    {
        var first = Parse();
        if (!Peek.Is(",")) return first;
        var items = new List<Expr> { first };
        while (Accept(",") && !AtEnd && !Peek.Is(")")) items.Add(Parse());
        return new ListExpr(items, Tuple: true);
    }

    public Expr Parse()
    {
        var value = ParseOr();
        if (!Peek.Is("if")) return value;
        Next();
        var condition = ParseOr();
        Expr? otherwise = Accept("else") ? Parse() : null;
        return new Conditional(condition, value, otherwise);
    }

    Expr ParseAnd()
    {
        var left = ParseNot();
        while (Accept("and")) left = new Binary("and", left, ParseNot());
        return left;
    }

    Expr ParseNot() => Accept("not") ? new Unary("not", ParseNot()) : ParseCompare();

    Expr ParseCompare()
    {
        var left = ParseConcat();
        while (true)
        {
            if (Peek.Kind == TokenKind.Operator && Peek.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
                left = new Binary(Next().Text, left, ParseConcat());
            else if (Accept("in")) left = new Binary("in", left, ParseConcat());
            else if (Peek.Is("not") && tokens[pos + 1].Is("in")) { pos += 2; left = new Unary("not", new Binary("in", left, ParseConcat())); }
            else return left;
        }
    }

    Expr ParseConcat()
    {
        var left = ParseAdditive();
        while (Accept("~")) left = new Binary("~", left, ParseAdditive());
        return left;
    }

    Expr ParseAdditive()
    {
        var left = ParseMultiplicative();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "+" or "-") left = new Binary(Next().Text, left, ParseMultiplicative());
        return left;
    }

    Expr ParseMultiplicative()
    {
        var left = ParsePow();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%") left = new Binary(Next().Text, left, ParsePow());
        return left;
    }

    Expr ParsePow()
    {
        var left = ParseUnary();
        while (Accept("**")) left = new Binary("**", left, ParseUnary());
        return left;
    }

    /// <summary>Jinja's parse_unary: a sign binds tighter than the filters after it (<c>-1 | abs</c> is 1), and
    /// filters and tests bind tighter than arithmetic.</summary>
    Expr ParseUnary(bool withFilter = true)
    {
        Expr node;
        if (Accept("-")) node = new Unary("-", ParseUnary(false));
        else if (Accept("+")) node = new Unary("+", ParseUnary(false));
        else node = ParsePostfix(ParsePrimary());
        return withFilter ? ParseFilterExpression(node) : node;
    }

    Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (Accept("."))
            {
                var t = Next();
                e = t.Kind switch
                {
                    TokenKind.Name => new Attribute(e, t.Text),
                    TokenKind.Integer => new Index(e, new Literal(t.Value)), // foo.0 is foo[0]
                    _ => throw new JinjaException($"expected a name after '.' but found '{t}'"),
                };
            }
            else if (Accept("[")) e = ParseSubscript(e);
            else if (Accept("(")) { var args = ParseArgs(out var kwargs); e = new Call(e, args, kwargs); }
            else return e;
        }
    }

    Expr ParseFilterExpression(Expr e)
    {
        while (true)
        {
            if (Accept("|"))
            {
                string name = ExpectName();
                if (!JinjaValues.FilterNames.Contains(name)) throw new JinjaException($"no filter named '{name}'");
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                if (Accept("(")) args = ParseArgs(out kwargs);
                e = new Filter(e, name, args, kwargs);
            }
            else if (Accept("is"))
            {
                bool negated = Accept("not");
                string name = ExpectName();
                if (!JinjaValues.TestNames.Contains(name)) throw new JinjaException($"no test named '{name}'");
                var args = new List<Expr>();
                if (Accept("(")) args = ParseArgs(out _);
                else if ((Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float || Peek.Is("(") || Peek.Is("[") || Peek.Is("{")
                          || Peek.Kind == TokenKind.Name) && !Peek.Is("else") && !Peek.Is("or") && !Peek.Is("and"))
                    args.Add(ParsePostfix(ParsePrimary()));
                e = new Test(e, name, negated, args);
            }
            else if (Accept("(")) { var args = ParseArgs(out var kwargs); e = new Call(e, args, kwargs); }
            else return e;
        }
    }

    Expr ParseSubscript(Expr target)
    {
        Expr? start = Peek.Is(":") ? null : Parse();
        if (!Accept(":")) { Expect("]"); return new Index(target, start!); }
        Expr? stop = Peek.Is(":") || Peek.Is("]") ? null : Parse();
        Expr? step = null;
        if (Accept(":") && !Peek.Is("]")) step = Parse();
        Expect("]");
        return new Slice(target, start, stop, step);
    }

    /// <summary>Positional arguments after an opening parenthesis, up to the closing one.</summary>
    public List<Expr> ParseCallArguments() => ParseArgs(out _);

    List<Expr> ParseArgs(out List<(string, Expr)> kwargs)
    {
        var args = new List<Expr>();
        kwargs = [];
        while (!Accept(")"))
        {
            if (Accept("**")) kwargs.Add(("**", Parse()));
            else if (Accept("*")) args.Add(new Splat(Parse()));
            else if (Peek.Kind == TokenKind.Name && tokens[pos + 1].Is("="))
            {
                string name = Next().Text;
                Next();
                kwargs.Add((name, Parse()));
            }
            else args.Add(Parse());
            if (!Peek.Is(")")) Expect(",");
        }
        return args;
    }

    Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.String:
                // Adjacent string literals concatenate, as in Python.
                var text = (string)t.Value!;
                while (Peek.Kind == TokenKind.String) text += (string)Next().Value!;
                return new Literal(text);
            case TokenKind.Integer:
            case TokenKind.Float:
                return new Literal(t.Value);
            case TokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new Literal(true),
                    "false" or "False" => new Literal(false),
                    "none" or "None" => new Literal(null),
                    _ => new Variable(t.Text),
                };
        }
        if (t.Is("("))
        {
            if (Accept(")")) return new ListExpr([], Tuple: true);
            var inner = Parse();
            if (!Peek.Is(",")) { Expect(")"); return inner; }
            var items = new List<Expr> { inner };
            while (Accept(",") && !Peek.Is(")")) items.Add(Parse());
            Expect(")");
            return new ListExpr(items, Tuple: true);
        }
        if (t.Is("["))
        {
            var items = new List<Expr>();
            while (!Accept("]")) { items.Add(Parse()); if (!Peek.Is("]")) Expect(","); }
            return new ListExpr(items);
        }
        if (t.Is("{"))
        {
            var items = new List<(Expr, Expr)>();
            while (!Accept("}"))
            {
                var key = Parse();
                Expect(":");
                items.Add((key, Parse()));
                if (!Peek.Is("}")) Expect(",");
            }
            return new DictExpr(items);
        }
        throw new JinjaException($"unexpected '{t}' in expression");
    }
}
