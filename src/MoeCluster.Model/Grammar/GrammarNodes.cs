using System.Text;

namespace MoeCluster.Model.Grammar;

/// <summary>What a structured output may be, compiled from a JSON Schema (or "any JSON object" for json_object):
/// the grammar <see cref="JsonMatcher"/> runs byte by byte. <see cref="MinLength"/> is the fewest bytes that complete a
/// value of this node, which lets generation close the output before max_tokens runs out.</summary>
public abstract record GrammarNode
{
    public abstract int MinLength { get; }
}

/// <summary>Exact bytes (const and enum values, literals true/false/null, the text around a tool call).</summary>
public sealed record LiteralNode(byte[] Bytes) : GrammarNode
{
    public LiteralNode(string text) : this(Encoding.UTF8.GetBytes(text)) { }
    public override int MinLength => Bytes.Length;
    public bool Equals(LiteralNode? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);
    public override int GetHashCode() => Bytes.Length;
}

/// <summary>A JSON string of MinChars to MaxChars characters.</summary>
public sealed record StringNode(int MinChars = 0, int MaxChars = int.MaxValue) : GrammarNode
{
    public override int MinLength => 2 + MinChars;
}

/// <summary>A JSON number (an integer when <see cref="Integer"/>).</summary>
public sealed record NumberNode(bool Integer) : GrammarNode
{
    public override int MinLength => 1;
}

/// <summary>One object property: written as <c>"name": value</c>.</summary>
public sealed record PropertyNode(string Name, GrammarNode Value, bool Required)
{
    /// <summary>The key's bytes with its quotes.</summary>
    public byte[] Key { get; } = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(Name));
    public int MinLength => Key.Length + 1 + Value.MinLength;
}

/// <summary>An object whose properties come in schema order (optional ones may be left out); with
/// <see cref="AnyKeys"/>, any string keys with any JSON values (json_object).</summary>
public sealed record ObjectNode(IReadOnlyList<PropertyNode> Properties, bool AnyKeys = false, int Depth = 0) : GrammarNode
{
    public override int MinLength => 2 + RequiredFrom(0);

    /// <summary>Bytes for the required properties from <paramref name="index"/> on, with a comma before each but the first.</summary>
    public int RequiredFrom(int index)
    {
        var required = Properties.Skip(index).Where(p => p.Required).ToArray();
        return required.Sum(p => p.MinLength) + Math.Max(0, required.Length - 1);
    }

    public bool AllOptionalFrom(int index) => AnyKeys || Properties.Skip(index).All(p => !p.Required);
}

public sealed record ArrayNode(GrammarNode Items, int MinItems = 0, int MaxItems = int.MaxValue) : GrammarNode
{
    public override int MinLength => 2 + MinItems * Items.MinLength + Math.Max(0, MinItems - 1);
}

/// <summary>Any one of several nodes (enum, anyOf, a list of types).</summary>
public sealed record ChoiceNode(IReadOnlyList<GrammarNode> Options) : GrammarNode
{
    public override int MinLength => Options.Min(o => o.MinLength);
}

/// <summary>Any JSON value, nested at most <see cref="Depth"/> more levels.</summary>
public sealed record AnyValueNode(int Depth) : GrammarNode
{
    public override int MinLength => 1;
}

/// <summary>Parts one after another with no whitespace between literals (a tool call: prefix, JSON, suffix).</summary>
public sealed record SequenceNode(IReadOnlyList<GrammarNode> Parts) : GrammarNode
{
    public override int MinLength => Parts.Sum(p => p.MinLength);
}

/// <summary>A schema (or part of one) constrained decoding cannot enforce.</summary>
public sealed class GrammarException(string message) : Exception(message);
