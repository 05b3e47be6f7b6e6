using System.Text.Json;

namespace MoeCluster.Node.Http;

/// <summary>Typed reads of request fields that fail with an <see cref="ApiException"/> naming the field, the way the
/// OpenAI API reports bad parameters. JSON null counts as absent for optional fields, as OpenAI treats it.</summary>
public static class JsonFields
{
    public static JsonElement? Get(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public static JsonElement Required(JsonElement obj, string name, string? param = null) =>
        Get(obj, name) ?? throw ApiException.MissingField(param ?? name);

    public static string? String(JsonElement obj, string name, string? param = null)
    {
        if (Get(obj, name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw ApiException.WrongType(param ?? name, "a string");
    }

    public static bool? Bool(JsonElement obj, string name, string? param = null)
    {
        if (Get(obj, name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiException.WrongType(param ?? name, "a boolean"),
        };
    }

    public static int? Int(JsonElement obj, string name, int min, int max = int.MaxValue, string? param = null)
    {
        if (Get(obj, name) is not { } v) return null;
        return AsInt(v, param ?? name, min, max);
    }

    public static int AsInt(JsonElement v, string param, int min, int max = int.MaxValue)
    {
        if (v.ValueKind != JsonValueKind.Number) throw ApiException.WrongType(param, "an integer");
        if (!v.TryGetInt64(out long n))
        {
            // 5.0 is an integer to JSON clients written in JavaScript; 5.5 and 1e30 are not.
            if (!v.TryGetDouble(out double d) || d != Math.Floor(d) || Math.Abs(d) > long.MaxValue)
                throw ApiException.BadRequest(param, $"'{param}' must be an integer between {min} and {max}, got {v.GetRawText()}", "invalid_type");
            n = (long)d;
        }
        if (n < min || n > max)
            throw ApiException.BadRequest(param, $"'{param}' must be between {min} and {max}, got {v.GetRawText()}");
        return (int)n;
    }

    public static long? Long(JsonElement obj, string name)
    {
        if (Get(obj, name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw ApiException.WrongType(name, "an integer");
        return v.TryGetInt64(out long n) ? n : throw ApiException.BadRequest(name, $"'{name}' must be a 64-bit integer, got {v.GetRawText()}", "invalid_type");
    }

    /// <summary>A finite number in [min, max] (or (min, max] when <paramref name="minExclusive"/>).</summary>
    public static double? Number(JsonElement obj, string name, double min, double max, bool minExclusive = false)
    {
        if (Get(obj, name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
            throw ApiException.WrongType(name, "a number");
        bool low = minExclusive ? d <= min : d < min;
        if (low || d > max)
            throw ApiException.BadRequest(name, $"'{name}' must be {(minExclusive ? "greater than" : "at least")} {min} and at most {max}, got {v.GetRawText()}");
        return d;
    }

    public static IReadOnlyList<int>? IntArray(JsonElement obj, string name, int min, int max = int.MaxValue)
    {
        if (Get(obj, name) is not { } v) return null;
        return AsIntArray(v, name, min, max);
    }

    public static IReadOnlyList<int> AsIntArray(JsonElement v, string param, int min, int max = int.MaxValue)
    {
        if (v.ValueKind != JsonValueKind.Array) throw ApiException.WrongType(param, "an array of integers");
        var list = new List<int>(v.GetArrayLength());
        int i = 0;
        foreach (var item in v.EnumerateArray()) list.Add(AsInt(item, $"{param}[{i++}]", min, max));
        return list;
    }

    public static JsonElement? Object(JsonElement obj, string name, string? param = null)
    {
        if (Get(obj, name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.Object ? v : throw ApiException.WrongType(param ?? name, "an object");
    }
}
