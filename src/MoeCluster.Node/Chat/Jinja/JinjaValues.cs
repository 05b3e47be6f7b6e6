using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>Jinja's undefined value: renders as "", is falsy, and is what a missing variable or key evaluates to.</summary>
public sealed class Undefined
{
    public static readonly Undefined Instance = new();
    Undefined() { }
    public override string ToString() => "";
}

/// <summary>The object <c>namespace(...)</c> returns: attributes assignable from inside loops.</summary>
public sealed class Namespace : Dictionary<string, object?>;

/// <summary>Variables of one scope; lookups fall back to the enclosing scope. A <c>for</c> body gets its own scope,
/// so <c>set</c> inside a loop does not leak out of it (Jinja's rule, the reason templates use namespace()).</summary>
public sealed class JinjaScope(JinjaScope? parent = null)
{
    readonly Dictionary<string, object?> vars = new();
    readonly JinjaScope? parent = parent;

    public object? Lookup(string name)
    {
        for (var s = this; s is not null; s = s.parent)
            if (s.vars.TryGetValue(name, out var v)) return v;
        return Undefined.Instance;
    }

    public void Set(string name, object? value) => vars[name] = value;
}

/// <summary>Values, operators, filters, tests and methods of the Jinja subset, with Python semantics where
/// templates depend on them (truthiness, slicing, string methods).</summary>
public static class JinjaValues
{
    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        Undefined => "undefined",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        IDictionary => "mapping",
        IList => "list",
        _ => v.GetType().Name,
    };

    public static string ToText(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => ToJson(v),
    };

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case IDictionary<string, object?> d:
                return key is string k && d.TryGetValue(k, out var v) ? v : Undefined.Instance;
            case IList<object?> list when key is long i:
                long at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : Undefined.Instance;
            case string s when key is long i:
                long c = i < 0 ? s.Length + i : i;
                return c >= 0 && c < s.Length ? s[(int)c].ToString() : Undefined.Instance;
            case LoopInfo loop when key is string name:
                return loop.Get(name);
            case Undefined:
                throw new JinjaException($"cannot read '{ToText(key)}' of an undefined value");
            default:
                return Undefined.Instance;
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        long st = step is long s ? s : 1;
        if (st == 0) throw new JinjaException("slice step cannot be zero");
        IList<object?> items = target switch
        {
            IList<object?> l => l,
            string str => str.Select(ch => (object?)ch.ToString()).ToList(),
            _ => throw new JinjaException($"cannot slice {TypeName(target)}"),
        };
        int n = items.Count;
        long Norm(object? v, long fallback) => v is long x ? (x < 0 ? Math.Max(x + n, st < 0 ? -1 : 0) : Math.Min(x, st < 0 ? n - 1 : n)) : fallback;
        long from = Norm(start, st > 0 ? 0 : n - 1), to = Norm(stop, st > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = from; st > 0 ? i < to : i > to; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Select(ToText)) : result;
    }

    public static object? Binary(string op, object? a, object? b)
    {
        switch (op)
        {
            case "==": return JinjaEquals(a, b);
            case "!=": return !JinjaEquals(a, b);
            case "~": return ToText(a) + ToText(b);
            case "in": return Contains(b, a);
        }
        if (op is "<" or ">" or "<=" or ">=")
        {
            int c = Compare(a, b);
            return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
        }
        if (op == "+" && a is string sa && b is string sb) return sa + sb;
        if (op == "+" && a is IList<object?> la && b is IList<object?> lb) return la.Concat(lb).ToList();
        if (op == "*" && a is string rep && b is long times) return string.Concat(Enumerable.Repeat(rep, (int)Math.Max(0, times)));
        if (a is long x && b is long y)
        {
            return op switch
            {
                // object arms: a switch mixing long and double arms would make every result a double.
                "+" => (object)(x + y),
                "-" => x - y,
                "*" => x * y,
                "/" => y == 0 ? throw new JinjaException("division by zero") : (double)x / y,
                "//" => y == 0 ? throw new JinjaException("division by zero") : (long)Math.Floor((double)x / y),
                "%" => y == 0 ? throw new JinjaException("modulo by zero") : ((x % y) + y) % y,
                _ => throw new JinjaException($"unknown operator {op}"),
            };
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double p = Convert.ToDouble(a, CultureInfo.InvariantCulture), q = Convert.ToDouble(b, CultureInfo.InvariantCulture);
            return op switch
            {
                "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q, "//" => Math.Floor(p / q), "%" => p % q,
                _ => throw new JinjaException($"unknown operator {op}"),
            };
        }
        throw new JinjaException($"unsupported operand types for {op}: {TypeName(a)} and {TypeName(b)}");
    }

    static bool IsNumber(object? v) => v is long or double;

    static bool JinjaEquals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return ReferenceEquals(a, b);
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        if (a is IList<object?> la && b is IList<object?> lb) return la.Count == lb.Count && la.Zip(lb).All(p => JinjaEquals(p.Item1, p.Item2));
        return Equals(a, b);
    }

    static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        throw new JinjaException($"cannot compare {TypeName(a)} with {TypeName(b)}");
    }

    static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new JinjaException("'in <string>' needs a string"),
        IDictionary<string, object?> d => item is string k && d.ContainsKey(k),
        IList<object?> l => l.Any(x => JinjaEquals(x, item)),
        Undefined or null => false,
        _ => throw new JinjaException($"'in' is not supported on {TypeName(container)}"),
    };

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        IDictionary<string, object?> d => d.Keys,
        IList<object?> l => l,
        string s => s.Select(c => (object?)c.ToString()),
        null or Undefined => [],
        _ => throw new JinjaException($"cannot iterate over {TypeName(v)}"),
    };

    public static object? ApplyFilter(string name, object? v, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "trim": return ToText(v).Trim();
            case "upper": return ToText(v).ToUpperInvariant();
            case "lower": return ToText(v).ToLowerInvariant();
            case "capitalize": { var s = ToText(v); return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(); }
            case "length" or "count": return (long)(v switch { string s => s.Length, ICollection c => c.Count, _ => Iterate(v).Count() });
            case "first": return Iterate(v).FirstOrDefault(Undefined.Instance);
            case "last": return v is IList<object?> l && l.Count > 0 ? l[^1] : Iterate(v).LastOrDefault(Undefined.Instance);
            case "reverse": return v is string rs ? new string(rs.Reverse().ToArray()) : Iterate(v).Reverse().ToList();
            case "list": return Iterate(v).ToList();
            case "join": return string.Join(args.Count > 0 ? ToText(args[0]) : "", Iterate(v).Select(ToText));
            case "default" or "d":
                {
                    bool boolean = args.Count > 1 && Truthy(args[1]);
                    bool useDefault = v is Undefined || (boolean && !Truthy(v));
                    return useDefault ? (args.Count > 0 ? args[0] : "") : v;
                }
            case "string": return ToText(v);
            case "int": return v switch { long i => i, double d => (long)d, string s when long.TryParse(s.Trim(), CultureInfo.InvariantCulture, out var p) => p, _ => 0L };
            case "float": return v switch { long i => (double)i, double d => d, string s when double.TryParse(s.Trim(), CultureInfo.InvariantCulture, out var p) => p, _ => 0.0 };
            case "abs": return v switch { long i => (object)Math.Abs(i), double d => Math.Abs(d), _ => throw new JinjaException("abs needs a number") };
            case "replace": return ToText(v).Replace(ToText(args[0]), ToText(args[1]), StringComparison.Ordinal);
            case "items": return v is IDictionary<string, object?> dict ? dict.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList() : throw new JinjaException("items needs a mapping");
            case "tojson": return ToJson(v, kwargs.TryGetValue("indent", out var ind) && ind is long n ? (int)n : null);
            case "safe" or "e" or "escape": return v;
            case "selectattr" or "rejectattr":
                {
                    string attr = ToText(args[0]);
                    bool keep = name == "selectattr";
                    return Iterate(v).Where(item =>
                    {
                        var a = GetItem(item, attr);
                        bool pass = args.Count > 1 ? ApplyTest(ToText(args[1]), a, args.Skip(2).ToList()) : Truthy(a);
                        return pass == keep;
                    }).ToList();
                }
            case "map":
                if (kwargs.TryGetValue("attribute", out var at)) return Iterate(v).Select(item => GetItem(item, ToText(at))).ToList();
                if (args.Count > 0) return Iterate(v).Select(item => ApplyFilter(ToText(args[0]), item, args.Skip(1).ToList(), new Dictionary<string, object?>())).ToList();
                throw new JinjaException("map needs a filter name or attribute=");
            default: throw new JinjaException($"filter '{name}' is not supported");
        }
    }

    public static bool ApplyTest(string name, object? v, IReadOnlyList<object?> args) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is IDictionary<string, object?>,
        "sequence" or "iterable" => v is IList<object?> or string or IDictionary<string, object?>,
        "odd" => v is long l && l % 2 != 0,
        "even" => v is long e && e % 2 == 0,
        "divisibleby" => v is long x && args.Count > 0 && args[0] is long y && y != 0 && x % y == 0,
        "equalto" or "eq" or "==" => args.Count > 0 && JinjaEquals(v, args[0]),
        "ne" or "!=" => args.Count > 0 && !JinjaEquals(v, args[0]),
        "in" => args.Count > 0 && Contains(args[0], v),
        _ => throw new JinjaException($"test '{name}' is not supported"),
    };

    public static object? CallMethod(object? target, string name, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        if (target is string s)
        {
            string? chars = args.Count > 0 && args[0] is string c ? c : null;
            return name switch
            {
                "strip" => chars is null ? s.Trim() : s.Trim(chars.ToCharArray()),
                "lstrip" => chars is null ? s.TrimStart() : s.TrimStart(chars.ToCharArray()),
                "rstrip" => chars is null ? s.TrimEnd() : s.TrimEnd(chars.ToCharArray()),
                "upper" => s.ToUpperInvariant(),
                "lower" => s.ToLowerInvariant(),
                "title" => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant()),
                "capitalize" => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(),
                "startswith" => s.StartsWith(ToText(args[0]), StringComparison.Ordinal),
                "endswith" => s.EndsWith(ToText(args[0]), StringComparison.Ordinal),
                "replace" => s.Replace(ToText(args[0]), ToText(args[1]), StringComparison.Ordinal),
                "split" => (chars is null ? s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) : s.Split(chars)).Select(p => (object?)p).ToList(),
                "find" => (long)s.IndexOf(ToText(args[0]), StringComparison.Ordinal),
                "count" => (long)CountOccurrences(s, ToText(args[0])),
                _ => throw new JinjaException($"string method '{name}' is not supported"),
            };
        }
        if (target is IDictionary<string, object?> d)
        {
            return name switch
            {
                "get" => d.TryGetValue(ToText(args[0]), out var v) ? v : args.Count > 1 ? args[1] : null,
                "items" => d.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(),
                "keys" => d.Keys.Select(k => (object?)k).ToList(),
                "values" => d.Values.ToList(),
                _ => throw new JinjaException($"mapping method '{name}' is not supported"),
            };
        }
        throw new JinjaException($"method '{name}' is not supported on {TypeName(target)}");
    }

    static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Like Python's json.dumps (", " and ": " separators, as HF's tojson uses).</summary>
    public static string ToJson(object? v, int? indent = null)
    {
        var sb = new StringBuilder();
        WriteJson(sb, v, indent, 0);
        return sb.ToString();
    }

    static void WriteJson(StringBuilder sb, object? v, int? indent, int depth)
    {
        string Newline(int d) => indent is int n ? "\n" + new string(' ', n * d) : "";
        switch (v)
        {
            case null or Undefined: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long or double: sb.Append(ToText(v)); break;
            case string s: sb.Append(JsonSerializer.Serialize(s, Compact)); break;
            case IDictionary<string, object?> d:
                sb.Append('{');
                int i = 0;
                foreach (var (k, item) in d)
                {
                    if (i++ > 0) sb.Append(indent is null ? ", " : ",");
                    sb.Append(Newline(depth + 1)).Append(JsonSerializer.Serialize(k, Compact)).Append(": ");
                    WriteJson(sb, item, indent, depth + 1);
                }
                if (d.Count > 0) sb.Append(Newline(depth));
                sb.Append('}');
                break;
            case IList<object?> l:
                sb.Append('[');
                for (int j = 0; j < l.Count; j++)
                {
                    if (j > 0) sb.Append(indent is null ? ", " : ",");
                    sb.Append(Newline(depth + 1));
                    WriteJson(sb, l[j], indent, depth + 1);
                }
                if (l.Count > 0) sb.Append(Newline(depth));
                sb.Append(']');
                break;
            default: throw new JinjaException($"cannot serialise {TypeName(v)} to JSON");
        }
    }
}

/// <summary>The <c>loop</c> variable inside a for block.</summary>
public sealed class LoopInfo(int index, int length, object? previous, object? next)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(length - index),
        "revindex0" => (long)(length - index - 1),
        "first" => index == 0,
        "last" => index == length - 1,
        "length" => (long)length,
        "previtem" => index > 0 ? previous : Undefined.Instance,
        "nextitem" => index < length - 1 ? next : Undefined.Instance,
        _ => Undefined.Instance,
    };
}
