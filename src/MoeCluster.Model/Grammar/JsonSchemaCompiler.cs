using System.Text.Json;

namespace MoeCluster.Model.Grammar;

/// <summary>Compiles a JSON Schema into a <see cref="GrammarNode"/>. Supported: type (also a list), properties,
/// required, additionalProperties (false, true or absent — only listed properties are generated), items, minItems,
/// maxItems, minLength, maxLength, enum, const, anyOf, oneOf (taken as anyOf), single-schema allOf, $ref into
/// $defs/definitions, boolean schemas; annotations are ignored. A keyword the grammar cannot enforce (pattern, format,
/// numeric bounds, prefixItems, …) is refused with <see cref="GrammarException"/> naming it, so an output that the
/// grammar accepts always validates.</summary>
public static class JsonSchemaCompiler
{
    /// <summary>Nesting allowed for values a schema leaves open (json_object, {} or true).</summary>
    public const int OpenDepth = 6;

    static readonly HashSet<string> Annotations =
    [
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
        "$anchor",
    ];

    static readonly HashSet<string> Supported =
    [
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "enum", "const",
        "anyOf", "oneOf", "allOf", "$ref",
    ];

    /// <summary>Any JSON object (response_format json_object).</summary>
    public static GrammarNode AnyObject() => new ObjectNode([], AnyKeys: true, Depth: OpenDepth);

    public static GrammarNode Compile(JsonElement schema) => Compile(schema, schema, 0);

    static GrammarNode Compile(JsonElement s, JsonElement root, int refs)
    {
        if (s.ValueKind == JsonValueKind.True) return new AnyValueNode(OpenDepth);
        if (s.ValueKind == JsonValueKind.False) throw new GrammarException("the schema 'false' accepts no value");
        if (s.ValueKind != JsonValueKind.Object) throw new GrammarException("a schema must be an object or a boolean");
        foreach (var p in s.EnumerateObject())
            if (!Supported.Contains(p.Name) && !Annotations.Contains(p.Name))
                throw new GrammarException($"the schema keyword '{p.Name}' is not supported by constrained decoding");

        // A combinator beside other constraints would need both enforced at once (an intersection): refused, except the
        // common {"type": …, "enum": […]}, where the values of another type are dropped.
        var present = s.EnumerateObject().Select(p => p.Name).Where(Supported.Contains).ToList();
        if (present.FirstOrDefault(Combinators.Contains) is { } combinator && present.Count > 1
            && !(combinator is "enum" or "const" && present.All(n => n == combinator || n == "type")))
            throw new GrammarException($"'{combinator}' beside {string.Join(", ", present.Where(n => n != combinator).Select(n => $"'{n}'"))} is not supported by constrained decoding");

        if (s.TryGetProperty("$ref", out var r))
        {
            if (refs > 16) throw new GrammarException("$ref nests too deeply (recursive schemas are not supported)");
            return Compile(Resolve(r.GetString() ?? "", root), root, refs + 1);
        }
        if (s.TryGetProperty("const", out var c)) return Values(s, [c]);
        if (s.TryGetProperty("enum", out var e))
        {
            if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() == 0) throw new GrammarException("'enum' must be a non-empty array");
            return Values(s, e.EnumerateArray().ToArray());
        }
        if (s.TryGetProperty("anyOf", out var anyOf))
        {
            if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0) throw new GrammarException("'anyOf' must be a non-empty array");
            return Choice(anyOf.EnumerateArray().Select(a => Compile(a, root, refs)).ToArray());
        }
        if (s.TryGetProperty("oneOf", out var oneOf))
        {
            // Exactly one must match: enforceable when no value can match two alternatives.
            if (oneOf.ValueKind != JsonValueKind.Array || oneOf.GetArrayLength() == 0) throw new GrammarException("'oneOf' must be a non-empty array");
            var options = oneOf.EnumerateArray().Select(a => Compile(a, root, refs)).ToArray();
            for (int i = 0; i < options.Length; i++)
                for (int j = i + 1; j < options.Length; j++)
                    if (MayOverlap(options[i], options[j]))
                        throw new GrammarException("'oneOf' alternatives that a value could match together are not supported; use 'anyOf' or disjoint types");
            return Choice(options);
        }
        if (s.TryGetProperty("allOf", out var all))
        {
            if (all.ValueKind != JsonValueKind.Array || all.GetArrayLength() != 1) throw new GrammarException("'allOf' is supported with exactly one schema");
            return Compile(all[0], root, refs);
        }

        string[] types;
        if (s.TryGetProperty("type", out var t))
            types = t.ValueKind == JsonValueKind.String ? [t.GetString()!]
                : t.ValueKind == JsonValueKind.Array ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToArray()
                : throw new GrammarException("'type' must be a string or an array of strings");
        else if (s.TryGetProperty("properties", out _) || s.TryGetProperty("additionalProperties", out _) || s.TryGetProperty("required", out _)) types = ["object"];
        else if (s.TryGetProperty("items", out _) || s.TryGetProperty("minItems", out _) || s.TryGetProperty("maxItems", out _)) types = ["array"];
        else if (s.TryGetProperty("minLength", out _) || s.TryGetProperty("maxLength", out _)) types = ["string"];
        else return new AnyValueNode(OpenDepth);
        return Choice(types.Select(type => Typed(type, s, root, refs)).ToArray());
    }

    static GrammarNode Typed(string type, JsonElement s, JsonElement root, int refs) => type switch
    {
        "string" => new StringNode(Count(s, "minLength", 0), Count(s, "maxLength", int.MaxValue)),
        "integer" => new NumberNode(Integer: true),
        "number" => new NumberNode(Integer: false),
        "boolean" => new ChoiceNode([new LiteralNode("true"), new LiteralNode("false")]),
        "null" => new LiteralNode("null"),
        "array" => new ArrayNode(s.TryGetProperty("items", out var items) ? Compile(items, root, refs) : new AnyValueNode(OpenDepth),
            Count(s, "minItems", 0), Count(s, "maxItems", int.MaxValue)),
        "object" => Object(s, root, refs),
        _ => throw new GrammarException($"unknown type '{type}'"),
    };

    static GrammarNode Object(JsonElement s, JsonElement root, int refs)
    {
        var required = s.TryGetProperty("required", out var req) && req.ValueKind == JsonValueKind.Array
            ? req.EnumerateArray().Select(x => x.GetString() ?? "").ToHashSet() : [];
        bool closed = s.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind == JsonValueKind.False;
        if (ap.ValueKind == JsonValueKind.Object) throw new GrammarException("'additionalProperties' with a schema is not supported; use false");
        if (!s.TryGetProperty("properties", out var props) || props.ValueKind != JsonValueKind.Object)
        {
            if (required.Count > 0) throw new GrammarException("'required' names properties the schema does not define");
            return closed ? new LiteralNode("{}") : new ObjectNode([], AnyKeys: true, Depth: OpenDepth);
        }
        var list = props.EnumerateObject().Select(p => new PropertyNode(p.Name, Compile(p.Value, root, refs), required.Contains(p.Name))).ToList();
        if (required.Except(list.Select(p => p.Name)).FirstOrDefault() is { } missing)
            throw new GrammarException($"'required' names '{missing}', which is not in 'properties'");
        return new ObjectNode(list);
    }

    static JsonElement Resolve(string reference, JsonElement root)
    {
        if (reference == "#") return root;
        foreach (var prefix in new[] { "#/$defs/", "#/definitions/" })
            if (reference.StartsWith(prefix, StringComparison.Ordinal)
                && root.TryGetProperty(prefix[2..^1], out var defs) && defs.TryGetProperty(reference[prefix.Length..], out var target))
                return target;
        throw new GrammarException($"cannot resolve $ref '{reference}' (only #/$defs/… and #/definitions/… are supported)");
    }

    static int Count(JsonElement s, string name, int fallback) =>
        s.TryGetProperty(name, out var v) ? (v.TryGetInt32(out int n) && n >= 0 ? n : throw new GrammarException($"'{name}' must be a non-negative integer")) : fallback;

    static readonly HashSet<string> Combinators = ["$ref", "anyOf", "oneOf", "allOf", "enum", "const"];

    static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>const/enum values as literals, keeping only those of the schema's type when it names one.</summary>
    static GrammarNode Values(JsonElement s, IReadOnlyList<JsonElement> values)
    {
        var kept = values.Where(v => !s.TryGetProperty("type", out var t) || OfType(v, t)).Select(v => (GrammarNode)new LiteralNode(JsonSerializer.Serialize(v, Compact))).ToArray();
        return kept.Length > 0 ? Choice(kept) : throw new GrammarException("no 'enum'/'const' value has the schema's 'type'");
    }

    static bool OfType(JsonElement v, JsonElement type)
    {
        var names = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()).ToArray() : [type.GetString()];
        return names.Any(n => n switch
        {
            "string" => v.ValueKind == JsonValueKind.String,
            "number" => v.ValueKind == JsonValueKind.Number,
            "integer" => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out _),
            "boolean" => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
            "null" => v.ValueKind == JsonValueKind.Null,
            "object" => v.ValueKind == JsonValueKind.Object,
            "array" => v.ValueKind == JsonValueKind.Array,
            _ => false,
        });
    }

    /// <summary>Whether some value could be read by both nodes: judged by the JSON kinds each can start with (two
    /// different literals never overlap).</summary>
    static bool MayOverlap(GrammarNode a, GrammarNode b)
    {
        if (a is LiteralNode la && b is LiteralNode lb) return la.Bytes.AsSpan().SequenceEqual(lb.Bytes);
        if (a is ChoiceNode ca) return ca.Options.Any(o => MayOverlap(o, b));
        if (b is ChoiceNode cb) return cb.Options.Any(o => MayOverlap(a, o));
        return Kinds(a).Overlaps(Kinds(b));
    }

    static HashSet<char> Kinds(GrammarNode n) => n switch
    {
        LiteralNode l => [l.Bytes[0] is (byte)'-' or >= (byte)'0' and <= (byte)'9' ? '0' : (char)l.Bytes[0]],
        StringNode => ['"'],
        NumberNode => ['0'],
        ObjectNode => ['{'],
        ArrayNode => ['['],
        ChoiceNode c => c.Options.SelectMany(Kinds).ToHashSet(),
        _ => ['"', '0', '{', '[', 't', 'f', 'n'],
    };

    static GrammarNode Choice(IReadOnlyList<GrammarNode> options) => options.Count == 1 ? options[0] : new ChoiceNode(options);
}
