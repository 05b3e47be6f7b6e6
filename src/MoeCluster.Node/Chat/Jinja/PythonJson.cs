using System.Text;
using MoeCluster.Model.Checkpoints;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>
/// Python's json.dumps, as transformers' <c>tojson</c> filter calls it (ensure_ascii=False unless asked, indent,
/// separators, sort_keys): ", " and ": " between items, or "," and ": " with an indent; characters outside ASCII
/// written as they are (as \uXXXX, with surrogate pairs above the BMP, under ensure_ascii); floats as Python's repr.
/// </summary>
public static class PythonJson
{
    public static string Dumps(object? value, bool ensureAscii = false, object? indent = null, object? separators = null, bool sortKeys = false)
    {
        string? pad = indent switch
        {
            null => null,
            long n => new string(' ', (int)Math.Max(0, n)),
            string s => s,
            _ => throw new JinjaException("tojson indent must be an integer or a string"),
        };
        string itemSeparator = pad is null ? ", " : ",", keySeparator = ": ";
        if (separators is IList<object?> { Count: 2 } pair)
        {
            itemSeparator = JinjaValues.ToText(pair[0]);
            keySeparator = JinjaValues.ToText(pair[1]);
        }
        var sb = new StringBuilder();
        Write(sb, value, 0);
        return sb.ToString();

        void Newline(int depth)
        {
            if (pad is null) return;
            sb.Append('\n');
            for (int i = 0; i < depth; i++) sb.Append(pad);
        }

        void Write(StringBuilder sb, object? v, int depth)
        {
            switch (v)
            {
                case null: sb.Append("null"); break;
                case bool b: sb.Append(b ? "true" : "false"); break;
                case long l: sb.Append(l); break;
                case double d:
                    sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : JinjaValues.FloatRepr(d));
                    break;
                case string s: WriteString(sb, s, ensureAscii); break;
                case Namespace: throw new JinjaException("Object of type Namespace is not JSON serializable");
                case IDictionary<string, object?> dict:
                    if (dict.Count == 0) { sb.Append("{}"); break; }
                    sb.Append('{');
                    var entries = sortKeys ? dict.OrderBy(p => p.Key, JsonText.CodePointOrder).ToList() : dict.ToList();
                    for (int i = 0; i < entries.Count; i++)
                    {
                        if (i > 0) sb.Append(itemSeparator);
                        Newline(depth + 1);
                        WriteString(sb, entries[i].Key, ensureAscii);
                        sb.Append(keySeparator);
                        Write(sb, entries[i].Value, depth + 1);
                    }
                    Newline(depth);
                    sb.Append('}');
                    break;
                case IList<object?> list:
                    if (list.Count == 0) { sb.Append("[]"); break; }
                    sb.Append('[');
                    for (int i = 0; i < list.Count; i++)
                    {
                        if (i > 0) sb.Append(itemSeparator);
                        Newline(depth + 1);
                        Write(sb, list[i], depth + 1);
                    }
                    Newline(depth);
                    sb.Append(']');
                    break;
                default: throw new JinjaException($"Object of type {JinjaValues.TypeName(v)} is not JSON serializable");
            }
        }
    }

    static void WriteString(StringBuilder sb, string s, bool ensureAscii) => JsonText.AppendString(sb, s, ensureAscii);
}
