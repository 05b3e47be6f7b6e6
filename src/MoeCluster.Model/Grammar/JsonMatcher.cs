namespace MoeCluster.Model.Grammar;

/// <summary>A parse in progress: a persistent stack of frames (what is being read, then what follows it). Records, so
/// equal parses compare equal and nondeterministic alternatives (anyOf, optional keys) can be merged.</summary>
public sealed record ParseStack(Frame Top, ParseStack? Rest)
{
    /// <summary>Fewest bytes that finish every frame on the stack.</summary>
    public int MinRemaining => Top.MinRemaining + (Rest?.MinRemaining ?? 0);

    /// <summary>Whether the input may end here (every frame can end without more bytes).</summary>
    public bool CanEnd => Top.CanEnd && (Rest?.CanEnd ?? true);
}

/// <summary>One thing being read. <see cref="Feed"/> returns the stacks that follow reading byte b with this frame on
/// top of <paramref name="rest"/>: none (rejected), one, or several (ambiguous so far); a null stack means the whole
/// input is complete.</summary>
public abstract record Frame
{
    public const int MaxWhitespace = 16;
    public abstract IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest);
    public abstract int MinRemaining { get; }
    public virtual bool CanEnd => false;

    protected static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r';
    protected static ParseStack Push(ParseStack? rest, Frame f) => new(f, rest);

    /// <summary>The successors of feeding b to a whole stack (a complete stack accepts nothing more).</summary>
    public static IEnumerable<ParseStack?> FeedStack(ParseStack? stack, byte b) => stack is null ? [] : stack.Top.Feed(b, stack.Rest);
}

/// <summary>A value of a node is expected, perhaps after whitespace.</summary>
public sealed record ValueFrame(GrammarNode Node, int Whitespace = 0) : Frame
{
    public override int MinRemaining => Node.MinLength;

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        if (IsWhitespace(b)) return Whitespace < MaxWhitespace && Node is not SequenceNode ? [Push(rest, this with { Whitespace = Whitespace + 1 })] : [];
        return Start(Node, b, rest);
    }

    /// <summary>Reads the first byte of a value of <paramref name="node"/>.</summary>
    public static IEnumerable<ParseStack?> Start(GrammarNode node, byte b, ParseStack? rest)
    {
        switch (node)
        {
            case LiteralNode l:
                return new LiteralFrame(l.Bytes, 0).Feed(b, rest);
            case StringNode s:
                return b == '"' ? [Push(rest, new StringFrame(s))] : [];
            case NumberNode n:
                return NumberFrame.Start(n.Integer, b, rest);
            case ObjectNode o:
                return b == '{' ? [Push(rest, new ObjectFrame(o))] : [];
            case ArrayNode a:
                return b == '[' ? [Push(rest, new ArrayFrame(a))] : [];
            case ChoiceNode c:
                return c.Options.SelectMany(o => Start(o, b, rest)).Distinct().ToList();
            case AnyValueNode any:
                return b switch
                {
                    (byte)'{' when any.Depth > 0 => [Push(rest, new ObjectFrame(new ObjectNode([], AnyKeys: true, Depth: any.Depth - 1)))],
                    (byte)'[' when any.Depth > 0 => [Push(rest, new ArrayFrame(new ArrayNode(new AnyValueNode(any.Depth - 1))))],
                    (byte)'"' => [Push(rest, new StringFrame(new StringNode()))],
                    (byte)'t' => new LiteralFrame("true"u8.ToArray(), 0).Feed(b, rest),
                    (byte)'f' => new LiteralFrame("false"u8.ToArray(), 0).Feed(b, rest),
                    (byte)'n' => new LiteralFrame("null"u8.ToArray(), 0).Feed(b, rest),
                    _ => NumberFrame.Start(false, b, rest),
                };
            case SequenceNode seq:
                var after = rest;
                for (int i = seq.Parts.Count - 1; i >= 1; i--)
                    after = Push(after, seq.Parts[i] is LiteralNode lit ? new LiteralFrame(lit.Bytes, 0) : new ValueFrame(seq.Parts[i]));
                return Start(seq.Parts[0], b, after);
            default:
                throw new InvalidOperationException($"unknown grammar node {node.GetType().Name}");
        }
    }
}

/// <summary>Exact bytes, <see cref="Position"/> of them read.</summary>
public sealed record LiteralFrame(byte[] Bytes, int Position, bool LeadingWhitespace = false, int Whitespace = 0) : Frame
{
    public override int MinRemaining => Bytes.Length - Position;

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        if (LeadingWhitespace && Position == 0 && IsWhitespace(b))
            return Whitespace < MaxWhitespace ? [Push(rest, this with { Whitespace = Whitespace + 1 })] : [];
        if (Bytes[Position] != b) return [];
        return Position + 1 == Bytes.Length ? [rest] : [Push(rest, this with { Position = Position + 1 })];
    }

    public bool Equals(LiteralFrame? other) => other is not null && Position == other.Position && Whitespace == other.Whitespace
        && LeadingWhitespace == other.LeadingWhitespace && Bytes.AsSpan().SequenceEqual(other.Bytes);
    public override int GetHashCode() => HashCode.Combine(Bytes.Length, Position, Whitespace);
}

/// <summary>Inside a JSON string: characters counted against the node's bounds, escapes checked (a \u escape may not
/// be a lone surrogate), UTF-8 multi-byte characters completed, control characters refused.</summary>
public sealed record StringFrame(StringNode Node, int Chars = 0, int Escape = 0, int Continuation = 0) : Frame
{
    // Escape: 0 none; 1 after '\'; 5, 4, 3, 2: that many hex digits of \uXXXX still to read; 14: second digit after 'd'.
    public override int MinRemaining => Continuation + Escape switch { 0 => 0, 1 => 1, 14 => 3, _ => Escape - 1 } + Math.Max(0, Node.MinChars - Chars) + 1;

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        if (Continuation > 0) return b is >= 0x80 and <= 0xBF ? [Push(rest, this with { Continuation = Continuation - 1 })] : [];
        switch (Escape)
        {
            case 1:
                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t')
                    return [Push(rest, this with { Escape = 0, Chars = Chars + 1 })];
                return b == 'u' ? [Push(rest, this with { Escape = 5 })] : [];
            case 5:
                if (!IsHex(b)) return [];
                return [Push(rest, this with { Escape = b is (byte)'d' or (byte)'D' ? 14 : 4 })];
            case 14:
                return b is >= (byte)'0' and <= (byte)'7' ? [Push(rest, this with { Escape = 3 })] : [];
            case 4 or 3:
                return IsHex(b) ? [Push(rest, this with { Escape = Escape - 1 })] : [];
            case 2:
                return IsHex(b) ? [Push(rest, this with { Escape = 0, Chars = Chars + 1 })] : [];
        }
        if (b == '"') return Chars >= Node.MinChars ? [rest] : [];
        if (Chars >= Node.MaxChars) return [];
        if (b == '\\') return [Push(rest, this with { Escape = 1 })];
        if (b < 0x20) return [];
        if (b < 0x80) return [Push(rest, this with { Chars = Chars + 1 })];
        int more = b switch { >= 0xC2 and <= 0xDF => 1, >= 0xE0 and <= 0xEF => 2, >= 0xF0 and <= 0xF4 => 3, _ => -1 };
        return more < 0 ? [] : [Push(rest, this with { Chars = Chars + 1, Continuation = more })];
    }

    static bool IsHex(byte b) => b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';
}

/// <summary>A JSON number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, at most 16 digits per part so a
/// number cannot run on forever. It ends when the next byte is not part of it.</summary>
public sealed record NumberFrame(bool Integer, int Phase, int Digits = 0) : Frame
{
    // Phase: 0 after '-'; 1 after a leading 0; 2 integer digits; 3 after '.'; 4 fraction digits; 5 after 'e'; 6 after the exponent sign; 7 exponent digits.
    const int MaxDigits = 16;

    public override int MinRemaining => CanEnd ? 0 : 1;
    public override bool CanEnd => Phase is 1 or 2 or 4 or 7;

    public static IEnumerable<ParseStack?> Start(bool integer, byte b, ParseStack? rest) => b switch
    {
        (byte)'-' => [Push(rest, new NumberFrame(integer, 0))],
        (byte)'0' => [Push(rest, new NumberFrame(integer, 1, 1))],
        >= (byte)'1' and <= (byte)'9' => [Push(rest, new NumberFrame(integer, 2, 1))],
        _ => [],
    };

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        NumberFrame? next = Phase switch
        {
            0 when b == '0' => this with { Phase = 1, Digits = 1 },
            0 when digit => this with { Phase = 2, Digits = 1 },
            2 when digit && Digits < MaxDigits => this with { Digits = Digits + 1 },
            1 or 2 when b == '.' && !Integer => this with { Phase = 3, Digits = 0 },
            1 or 2 or 4 when b is (byte)'e' or (byte)'E' && !Integer => this with { Phase = 5, Digits = 0 },
            3 when digit => this with { Phase = 4, Digits = 1 },
            4 when digit && Digits < MaxDigits => this with { Digits = Digits + 1 },
            5 when b is (byte)'+' or (byte)'-' => this with { Phase = 6 },
            5 or 6 when digit => this with { Phase = 7, Digits = 1 },
            7 when digit && Digits < 3 => this with { Digits = Digits + 1 },
            _ => null,
        };
        IEnumerable<ParseStack?> result = next is null ? [] : [Push(rest, next)];
        // The number may also be over: the byte then belongs to what follows it.
        return CanEnd ? result.Concat(FeedStack(rest, b)).ToList() : result;
    }
}

/// <summary>Inside an object. Phase 0: after '{'; 1: after a property's value; 2: after ','. Schema properties come in
/// order from <see cref="Next"/>; an optional one may be skipped, a required one may not.</summary>
public sealed record ObjectFrame(ObjectNode Node, int Next = 0, int Phase = 0, int Whitespace = 0) : Frame
{
    public override int MinRemaining => Phase == 2
        ? (Node.AnyKeys ? 4 : Node.Properties.Skip(Next).Any(p => p.Required) ? Node.RequiredFrom(Next) : Node.Properties.Skip(Next).Min(p => p.MinLength)) + 1
        : 1 + Node.RequiredFrom(Next) + (Phase == 1 && Node.Properties.Skip(Next).Any(p => p.Required) ? 1 : 0);

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        if (IsWhitespace(b)) return Whitespace < MaxWhitespace ? [Push(rest, this with { Whitespace = Whitespace + 1 })] : [];
        var results = new List<ParseStack?>();
        if (b == '}' && Phase != 2 && Node.AllOptionalFrom(Next)) results.Add(rest);
        if (b == ',' && Phase == 1 && (Node.AnyKeys || Next < Node.Properties.Count)) results.Add(Push(rest, this with { Phase = 2, Whitespace = 0 }));
        if (b == '"' && Phase != 1)
        {
            var colon = new LiteralFrame(":"u8.ToArray(), 0, LeadingWhitespace: true);
            if (Node.AnyKeys)
            {
                var after = Push(Push(Push(rest, this with { Phase = 1, Whitespace = 0 }), new ValueFrame(new AnyValueNode(Node.Depth))), colon);
                results.Add(Push(after, new StringFrame(new StringNode())));
            }
            else
                for (int j = Next; j < Node.Properties.Count; j++)
                {
                    var p = Node.Properties[j];
                    var after = Push(Push(Push(rest, this with { Next = j + 1, Phase = 1, Whitespace = 0 }), new ValueFrame(p.Value)), colon);
                    results.Add(Push(after, new LiteralFrame(p.Key, 1)));
                    if (p.Required) break;
                }
        }
        return results;
    }
}

/// <summary>Inside an array: phase 0 after '[', 1 after an item; <see cref="Count"/> items begun.</summary>
public sealed record ArrayFrame(ArrayNode Node, int Count = 0, int Phase = 0, int Whitespace = 0) : Frame
{
    public override int MinRemaining => 1 + Math.Max(0, Node.MinItems - Count) * (Node.Items.MinLength + 1);

    public override IEnumerable<ParseStack?> Feed(byte b, ParseStack? rest)
    {
        if (IsWhitespace(b)) return Whitespace < MaxWhitespace ? [Push(rest, this with { Whitespace = Whitespace + 1 })] : [];
        var results = new List<ParseStack?>();
        if (b == ']' && Count >= Node.MinItems) results.Add(rest);
        var nextItem = Push(rest, this with { Count = Count + 1, Phase = 1, Whitespace = 0 });
        if (b == ',' && Phase == 1 && Count < Node.MaxItems) results.Add(Push(nextItem, new ValueFrame(Node.Items)));
        if (Phase == 0 && Count < Node.MaxItems) results.AddRange(ValueFrame.Start(Node.Items, b, nextItem));
        return results;
    }
}

/// <summary>Runs a grammar over bytes: the set of parses still alive after each byte.</summary>
public sealed class JsonMatcher
{
    /// <summary>At most this many alternative parses are followed (anyOf over similar schemas).</summary>
    public const int MaxParses = 64;

    public IReadOnlyList<ParseStack?> Parses { get; private set; }

    public JsonMatcher(GrammarNode root) => Parses = [new ParseStack(new ValueFrame(root), null)];

    JsonMatcher(IReadOnlyList<ParseStack?> parses) => Parses = parses;

    public static IReadOnlyList<ParseStack?> Step(IReadOnlyList<ParseStack?> parses, byte b)
    {
        var next = new HashSet<ParseStack?>();
        foreach (var p in parses)
            foreach (var s in Frame.FeedStack(p, b))
                if (next.Count < MaxParses) next.Add(s);
        return next.ToList();
    }

    /// <summary>Feeds bytes; false (and no change) when the grammar rejects them.</summary>
    public bool TryAdvance(ReadOnlySpan<byte> bytes)
    {
        var parses = Parses;
        foreach (var b in bytes)
        {
            parses = Step(parses, b);
            if (parses.Count == 0) return false;
        }
        Parses = parses;
        return true;
    }

    /// <summary>A complete value was read (nothing may follow).</summary>
    public bool IsClosed => Parses.Any(p => p is null);

    /// <summary>The input may end here (a complete value, perhaps a number that could still grow).</summary>
    public bool CanEnd => Parses.Any(p => p is null || p.CanEnd);

    /// <summary>Fewest bytes that complete the value.</summary>
    public int MinRemaining => MinRemainingOf(Parses);

    public static int MinRemainingOf(IReadOnlyList<ParseStack?> parses) => parses.Count == 0 ? int.MaxValue : parses.Min(p => p?.MinRemaining ?? 0);

    /// <summary>Whether <paramref name="text"/> is accepted as a whole.</summary>
    public static bool Accepts(GrammarNode root, ReadOnlySpan<byte> text)
    {
        var m = new JsonMatcher(root);
        return m.TryAdvance(text) && m.CanEnd;
    }
}
