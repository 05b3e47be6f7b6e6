using System.Text;
using System.Text.Json.Nodes;

namespace MoeCluster.Node.Tests.Fuzz;

/// <summary>Ways to break a valid JSON body: every JSON type in place of a field, escaped lone surrogates in every
/// string and key, and byte-level damage (truncation, flipped bytes, invalid UTF-8, noise, deep nesting).</summary>
public static class JsonMutations
{
    /// <summary>Raw JSON texts of every type, including values .NET cannot hold (lone surrogates, 1e400, 2^64).</summary>
    public static readonly string[] Samples =
    [
        "null", "true", "false", "0", "1", "-1", "2.5", "-0.0", "1e308", "-1e308", "1e-308", "1e400", "18446744073709551616",
        "-9223372036854775809", "\"\"", "\"text\"", "\"ab\\ud800cd\"", "\"\\udfff\"", "\"\\u0000\"", "\"\\ud83d\\ude00\"", "\"123\"",
        "[]", "[1,2,3]", "[99999999]", "[-1]", "[\"a\",\"b\"]", "[null]", "[[1],[2]]", "{}", "{\"a\":1}", "{\"type\":\"text\"}",
        "{\"\\ud800\":1}", new string('[', 40) + new string(']', 40),
    ];

    /// <summary>Escapes put into strings and property names.</summary>
    public static readonly string[] Escapes = ["\\ud800", "\\udfff", "ab\\ud800cd", "\\ud800\\ud800", "\\udc00\\ud800", "\\u0000", "\\ud83d\\ude00", "\\ud83d"];

    const string Marker = "__fuzz_marker__";

    /// <summary><paramref name="valid"/> with the value at <paramref name="path"/> (e.g. <c>messages[0].content</c>)
    /// replaced by the raw JSON text <paramref name="raw"/>.</summary>
    public static string Replace(string valid, string path, string raw)
    {
        var root = JsonNode.Parse(valid)!;
        var (parent, key, index) = Locate(root, path);
        if (index is int i) parent.AsArray()[i] = Marker;
        else parent.AsObject()[key!] = Marker;
        return root.ToJsonString().Replace($"\"{Marker}\"", raw);
    }

    /// <summary>Every string value of the body with <paramref name="escape"/> put inside it, one variant per string,
    /// and every property name with it appended.</summary>
    public static IEnumerable<(string Where, string Body)> WithEscapes(string valid, string escape)
    {
        var text = valid;
        int at = 0;
        while ((at = text.IndexOf('"', at)) >= 0)
        {
            int end = text.IndexOf('"', at + 1);
            if (end < 0) yield break;
            string inner = text[(at + 1)..end];
            int mid = inner.Length / 2;
            yield return ($"'{inner}'", text[..(at + 1)] + inner[..mid] + escape + inner[mid..] + text[end..]);
            at = end + 1;
        }
    }

    /// <summary>Byte-level damage of a valid body.</summary>
    public static byte[] Damage(Random random, string valid)
    {
        var bytes = Encoding.UTF8.GetBytes(valid);
        switch (random.Next(8))
        {
            case 0: return bytes[..random.Next(bytes.Length)];                                      // truncated
            case 1: { var b = (byte[])bytes.Clone(); for (int k = 0; k < 1 + random.Next(4); k++) b[random.Next(b.Length)] = (byte)random.Next(256); return b; }
            case 2: { var b = new byte[random.Next(1, 200)]; random.NextBytes(b); return b; }     // pure noise
            case 3: return [.. bytes[..random.Next(bytes.Length)], 0xC3, 0x28, .. bytes[random.Next(bytes.Length)..]];  // invalid UTF-8 inside
            case 4: return Encoding.UTF8.GetBytes(new string('[', random.Next(50, 2000)));          // too deep
            case 5: return Encoding.UTF8.GetBytes(valid.Replace("\"", random.Next(2) == 0 ? "'" : ""));  // not JSON
            case 6: return Encoding.UTF8.GetBytes(valid + valid);                                   // two documents
            default: return Encoding.UTF8.GetBytes(valid.Insert(1, "\"model\":\"dup\","));          // duplicate key
        }
    }

    static (JsonNode Parent, string? Key, int? Index) Locate(JsonNode root, string path)
    {
        var parts = path.Replace("]", "").Split('.', '[');
        JsonNode node = root;
        for (int p = 0; p < parts.Length - 1; p++)
            node = int.TryParse(parts[p], out int i) ? node.AsArray()[i]! : node.AsObject()[parts[p]]!;
        string last = parts[^1];
        return int.TryParse(last, out int li) ? (node, null, li) : (node, last, null);
    }
}
