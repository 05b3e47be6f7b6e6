using System.Globalization;
using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>Jinja2's built-in filters and tests that chat templates use, with Jinja2's arguments and Python's
/// results, and transformers' own <c>tojson</c>. Names outside these sets are refused when a template compiles.</summary>
public static partial class JinjaValues
{
    public static readonly IReadOnlySet<string> FilterNames = new HashSet<string>
    {
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
        "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
        "tojson", "trim", "truncate", "unique", "upper", "wordcount",
    };

    public static readonly IReadOnlySet<string> TestNames = new HashSet<string>
    {
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter", "float",
        "ge", ">=", "gt", ">", "greaterthan", "in", "integer", "iterable", "le", "<=", "lower", "lt", "<", "lessthan", "mapping",
        "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
    };

    static object? Arg(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, int index, string name, object? fallback) =>
        kwargs.TryGetValue(name, out var k) ? k : index < args.Count ? args[index] : fallback;

    public static object? ApplyFilter(string name, object? v, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "trim":
                {
                    var chars = Arg(args, kwargs, 0, "chars", null) as string;
                    return chars is null ? PyStrip(ToText(v), null, true, true) : PyStrip(ToText(v), chars, true, true);
                }
            case "upper": return ToText(v).ToUpperInvariant();
            case "lower": return ToText(v).ToLowerInvariant();
            case "capitalize": return Capitalize(ToText(v));
            case "title": return Title(ToText(v));
            case "length" or "count": return Length(v);
            case "first": return Iterate(v).FirstOrDefault(Undefined.Instance);
            case "last": return v is IList<object?> l ? (l.Count > 0 ? l[^1] : Undefined.Instance)
                : v is JinjaGenerator ? throw new JinjaException("'generator' object is not reversible") : Iterate(v).LastOrDefault(Undefined.Instance);
            case "reverse": return v is string rs ? string.Concat(rs.EnumerateRunes().Reverse()) : Iterate(v).Reverse().ToList();
            case "list": return Iterate(v).ToList();
            case "join":
                {
                    string sep = ToText(Arg(args, kwargs, 0, "d", ""));
                    var attr = Arg(args, kwargs, 1, "attribute", null);
                    return string.Join(sep, Iterate(v).Select(x => ToText(attr is null ? x : GetAttribute(x, attr))));
                }
            case "default" or "d":
                {
                    bool boolean = Truthy(Arg(args, kwargs, 1, "boolean", false));
                    bool useDefault = v is Undefined || (boolean && !Truthy(v));
                    return useDefault ? Arg(args, kwargs, 0, "default_value", "") : v;
                }
            case "string": return ToText(v);
            case "int": return ToInt(v, Arg(args, kwargs, 0, "default", 0L));
            case "float": return ToFloat(v, Arg(args, kwargs, 0, "default", 0.0));
            case "abs": return v switch { long i => (object)Math.Abs(i), double d => Math.Abs(d), _ => throw new JinjaException($"bad operand type for abs(): '{TypeName(v)}'") };
            case "round":
                {
                    long precision = Arg(args, kwargs, 0, "precision", 0L) is long p ? p : 0;
                    string method = ToText(Arg(args, kwargs, 1, "method", "common"));
                    double x = ToDouble(v), scale = Math.Pow(10, precision);
                    return method switch
                    {
                        "ceil" => Math.Ceiling(x * scale) / scale,
                        "floor" => Math.Floor(x * scale) / scale,
                        _ => Math.Round(x, (int)precision, MidpointRounding.ToEven),
                    };
                }
            case "replace":
                {
                    long count = Arg(args, kwargs, 2, "count", null) is long c ? c : -1;
                    return PyReplace(ToText(v), ToText(args[0]), ToText(args[1]), count);
                }
            case "items": return v is IDictionary<string, object?> dict ? new JinjaGenerator(dict.Select(p => (object?)new JinjaTuple([p.Key, p.Value])).ToList())
                : v is Undefined ? new JinjaGenerator([]) : throw new JinjaException($"items() needs a mapping, got {TypeName(v)}");
            case "tojson":
                return PythonJson.Dumps(v, ensureAscii: Truthy(Arg(args, kwargs, 0, "ensure_ascii", false)),
                    indent: Arg(args, kwargs, 1, "indent", null), separators: Arg(args, kwargs, 2, "separators", null),
                    sortKeys: Truthy(Arg(args, kwargs, 3, "sort_keys", false)));
            case "safe" or "e" or "escape" or "forceescape": return v is Undefined ? "" : v;
            case "indent":
                {
                    var width = Arg(args, kwargs, 0, "width", 4L);
                    string pad = width is string ws ? ws : new string(' ', (int)(long)width!);
                    bool first = Truthy(Arg(args, kwargs, 1, "first", false)), blank = Truthy(Arg(args, kwargs, 2, "blank", false));
                    string text = ToText(v);
                    var lines = text.Split('\n');
                    var sb = new StringBuilder();
                    for (int i = 0; i < lines.Length; i++)
                    {
                        if (i > 0) sb.Append('\n');
                        bool indentThis = (i > 0 || first) && (blank || lines[i].Length > 0);
                        if (indentThis) sb.Append(pad);
                        sb.Append(lines[i]);
                    }
                    return sb.ToString();
                }
            case "center":
                {
                    int width = (int)(Arg(args, kwargs, 0, "width", 80L) as long? ?? 80);
                    string s = ToText(v);
                    int total = Math.Max(0, width - s.Length), left = total / 2 + (total & width & 1);
                    return new string(' ', left) + s + new string(' ', total - left);
                }
            case "wordcount": return (long)ToText(v).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "truncate":
                {
                    string s = ToText(v);
                    int length = (int)(Arg(args, kwargs, 0, "length", 255L) as long? ?? 255);
                    bool killwords = Truthy(Arg(args, kwargs, 1, "killwords", false));
                    string end = ToText(Arg(args, kwargs, 2, "end", "..."));
                    long leeway = Arg(args, kwargs, 3, "leeway", 5L) as long? ?? 5;
                    if (s.Length <= length + leeway) return s;
                    if (killwords) return s[..(length - end.Length)] + end;
                    string cut = s[..(length - end.Length)];
                    int space = cut.LastIndexOf(' ');
                    return (space >= 0 ? cut[..space] : cut) + end;
                }
            case "format": return Binary("%", ToText(v), args.Count == 1 ? args[0] : new JinjaTuple(args));
            case "attr": return GetAttribute(v, args[0]);
            case "sum":
                {
                    var attr = Arg(args, kwargs, 0, "attribute", null);
                    object? total = Arg(args, kwargs, 1, "start", 0L);
                    foreach (var x in Iterate(v)) total = Binary("+", total, attr is null ? x : GetAttribute(x, attr));
                    return total;
                }
            case "min" or "max":
                {
                    var items = Iterate(v).ToList();
                    if (items.Count == 0) return Undefined.Instance;
                    var attr = Arg(args, kwargs, 1, "attribute", null);
                    bool caseSensitive = Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
                    object? Key(object? x) => SortKey(attr is null ? x : GetAttribute(x, attr), caseSensitive);
                    var best = items[0];
                    foreach (var x in items.Skip(1))
                    {
                        int c = Compare(Key(x), Key(best));
                        if (name == "min" ? c < 0 : c > 0) best = x;
                    }
                    return best;
                }
            case "unique":
                {
                    bool caseSensitive = Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
                    var attr = Arg(args, kwargs, 1, "attribute", null);
                    var seen = new List<object?>();
                    var result = new List<object?>();
                    foreach (var x in Iterate(v))
                    {
                        var key = SortKey(attr is null ? x : GetAttribute(x, attr), caseSensitive);
                        if (seen.Any(s => JinjaEquals(s, key))) continue;
                        seen.Add(key);
                        result.Add(x);
                    }
                    return result;
                }
            case "sort":
                {
                    bool reverse = Truthy(Arg(args, kwargs, 0, "reverse", false));
                    bool caseSensitive = Truthy(Arg(args, kwargs, 1, "case_sensitive", false));
                    var attr = Arg(args, kwargs, 2, "attribute", null);
                    var items = Iterate(v).ToList();
                    var keyed = items.Select((x, i) => (Key: SortKey(attr is null ? x : GetAttribute(x, attr), caseSensitive), Index: i, Item: x)).ToList();
                    // Python's sort is stable; reverse keeps equal items in their original order too.
                    keyed.Sort((p, q) => { int c = JinjaEquals(p.Key, q.Key) || (p.Key is Undefined && q.Key is Undefined) ? 0 : Compare(p.Key, q.Key); if (reverse) c = -c; return c != 0 ? c : p.Index.CompareTo(q.Index); });
                    return keyed.Select(k => k.Item).ToList();
                }
            case "dictsort":
                {
                    if (v is not IDictionary<string, object?> map) throw new JinjaException($"dictsort needs a mapping, got {TypeName(v)}");
                    bool caseSensitive = Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
                    string by = ToText(Arg(args, kwargs, 1, "by", "key"));
                    bool reverse = Truthy(Arg(args, kwargs, 2, "reverse", false));
                    var pairs = map.Select((p, i) => (Pair: p, Index: i)).ToList();
                    pairs.Sort((a, b) =>
                    {
                        int c = Compare(SortKey(by == "value" ? a.Pair.Value : a.Pair.Key, caseSensitive), SortKey(by == "value" ? b.Pair.Value : b.Pair.Key, caseSensitive));
                        if (reverse) c = -c;
                        return c != 0 ? c : a.Index.CompareTo(b.Index);
                    });
                    return pairs.Select(p => (object?)new JinjaTuple([p.Pair.Key, p.Pair.Value])).ToList();
                }
            case "batch":
                {
                    int size = (int)(long)args[0]!;
                    var fill = Arg(args, kwargs, 1, "fill_with", null);
                    var result = new List<object?>();
                    List<object?>? current = null;
                    foreach (var x in Iterate(v))
                    {
                        current ??= [];
                        current.Add(x);
                        if (current.Count == size) { result.Add(current); current = null; }
                    }
                    if (current is not null)
                    {
                        if (fill is not null) while (current.Count < size) current.Add(fill);
                        result.Add(current);
                    }
                    return result;
                }
            case "selectattr" or "rejectattr":
                {
                    var attr = args[0];
                    bool keep = name == "selectattr";
                    return new JinjaGenerator(Iterate(v).Where(item =>
                    {
                        var a = GetAttribute(item, attr);
                        bool pass = args.Count > 1 ? ApplyTest(ToText(args[1]), a, args.Skip(2).ToList()) : Truthy(a);
                        return pass == keep;
                    }).ToList());
                }
            case "select" or "reject":
                {
                    bool keep = name == "select";
                    return new JinjaGenerator(Iterate(v).Where(item => (args.Count > 0 ? ApplyTest(ToText(args[0]), item, args.Skip(1).ToList()) : Truthy(item)) == keep).ToList());
                }
            case "map":
                if (kwargs.TryGetValue("attribute", out var at))
                {
                    var fallback = kwargs.GetValueOrDefault("default", Undefined.Instance);
                    return new JinjaGenerator(Iterate(v).Select(item => GetAttribute(item, at) is Undefined && fallback is not Undefined ? fallback : GetAttribute(item, at)).ToList());
                }
                if (args.Count > 0) return new JinjaGenerator(Iterate(v).Select(item => ApplyFilter(ToText(args[0]), item, args.Skip(1).ToList(), kwargs)).ToList());
                throw new JinjaException("map needs a filter name or attribute=");
            default: throw new JinjaException($"no filter named '{name}'");
        }
    }

    /// <summary>Jinja's attribute lookup for filters: "a.b" walks dotted paths, digits index lists.</summary>
    static object? GetAttribute(object? item, object? attribute)
    {
        if (attribute is long i) return GetItem(item, i);
        foreach (string part in ToText(attribute).Split('.'))
        {
            item = long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out long index) && item is IList<object?> ? GetItem(item, index) : GetItem(item, part);
        }
        return item;
    }

    static object? SortKey(object? v, bool caseSensitive) => !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    static object ToInt(object? v, object? fallback) => v switch
    {
        long i => i,
        bool b => b ? 1L : 0L,
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var p) => p,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => (long)Math.Truncate(f),
        _ => fallback ?? 0L,
    };

    static object ToFloat(object? v, object? fallback) => v switch
    {
        long i => (double)i,
        double d => d,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) => p,
        _ => fallback ?? 0.0,
    };

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
        "sequence" => v is IList<object?> or string or IDictionary<string, object?>,
        "iterable" => v is IList<object?> or string or IDictionary<string, object?>,
        "callable" => v is JinjaFunction or Macro or Undefined, // Jinja's Undefined has __call__ (which raises)
        "odd" => v is long l && l % 2 != 0,
        "even" => v is long e && e % 2 == 0,
        "divisibleby" => v is long x && args.Count > 0 && args[0] is long y && y != 0 && x % y == 0,
        "lower" => v is string s && s.Any(char.IsLetter) && s == s.ToLowerInvariant(),
        "upper" => v is string u && u.Any(char.IsLetter) && u == u.ToUpperInvariant(),
        "escaped" => false,
        "sameas" => args.Count > 0 && (ReferenceEquals(v, args[0]) || (v is null && args[0] is null) || (v is bool a && args[0] is bool b && a == b)),
        "equalto" or "eq" or "==" => args.Count > 0 && JinjaEquals(v, args[0]),
        "ne" or "!=" => args.Count > 0 && !JinjaEquals(v, args[0]),
        "lt" or "<" or "lessthan" => Compare(v, args[0]) < 0,
        "le" or "<=" => Compare(v, args[0]) <= 0,
        "gt" or ">" or "greaterthan" => Compare(v, args[0]) > 0,
        "ge" or ">=" => Compare(v, args[0]) >= 0,
        "in" => args.Count > 0 && Contains(args[0], v),
        "filter" => v is string f && FilterNames.Contains(f),
        "test" => v is string t && TestNames.Contains(t),
        _ => throw new JinjaException($"no test named '{name}'"),
    };

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Jinja's title: each word (after a space, dash, bracket or brace) capitalised, the rest lowercased.</summary>
    static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            sb.Append(start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = char.IsWhiteSpace(c) || c is '-' or '(' or '[' or '{' or '<';
        }
        return sb.ToString();
    }
}
