using System.Globalization;
using System.Text;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// The two JSON spellings our files must match byte for byte: the safetensors header as Rust's serde_json writes it
/// (compact, non-ASCII kept as UTF-8) and the index as Python's <c>json.dumps(indent=2, sort_keys=True)</c> writes it
/// (non-ASCII escaped as <c>\uXXXX</c>). Chat templates' <c>tojson</c> writes strings the same way as json.dumps.
/// </summary>
public static class JsonText
{
    /// <summary>A JSON string as Python's json.dumps writes it: <paramref name="asciiOnly"/> is ensure_ascii (everything
    /// outside ' '..'~' as \uXXXX, surrogate pairs above the BMP); otherwise only control characters are escaped.</summary>
    public static void AppendString(StringBuilder sb, string value, bool asciiOnly)
    {
        sb.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (asciiOnly && c > 0x7e))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>
    /// Orders strings by Unicode code point, as Rust's <c>str::cmp</c> (UTF-8 bytes) and Python's <c>sorted</c> do;
    /// ordinal UTF-16 order differs for characters beyond the Basic Multilingual Plane.
    /// </summary>
    public static readonly IComparer<string> CodePointOrder = Comparer<string>.Create(CompareCodePoints);

    static int CompareCodePoints(string? a, string? b)
    {
        if (ReferenceEquals(a, b)) return 0;
        if (a is null) return -1;
        if (b is null) return 1;
        var ea = a.EnumerateRunes();
        var eb = b.EnumerateRunes();
        while (true)
        {
            bool ha = ea.MoveNext(), hb = eb.MoveNext();
            if (!ha || !hb) return ha.CompareTo(hb);
            int c = ea.Current.Value.CompareTo(eb.Current.Value);
            if (c != 0) return c;
        }
    }
}
