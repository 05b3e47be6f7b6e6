using System.Collections;
using System.Globalization;
using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>Jinja's undefined value: renders as "", is falsy, iterates as empty, and is what a missing variable or
/// key evaluates to; reading an attribute of it is an error, as with Jinja's default Undefined.</summary>
public sealed class Undefined
{
    public static readonly Undefined Instance = new();
    Undefined() { }
    public override string ToString() => "";
}

/// <summary>The object <c>namespace(...)</c> returns: attributes assignable from inside loops.</summary>
public sealed class Namespace : Dictionary<string, object?>;

/// <summary>A Python tuple: a list that templates cannot change (the sandbox refuses to change lists anyway).</summary>
public sealed class JinjaTuple(IEnumerable<object?> items) : List<object?>(items);

/// <summary>What map, select, reject, selectattr and rejectattr return in Jinja: a generator, iterable once, with no
/// length and no indexing (so <c>x | map(...) | length</c> is an error there too, and needs <c>| list</c>).</summary>
public sealed class JinjaGenerator(IEnumerable<object?> items)
{
    IEnumerable<object?>? items = items;

    public IEnumerable<object?> Consume()
    {
        var rest = items ?? [];
        items = null;
        return rest;
    }
}

/// <summary>Variables of one scope; lookups fall back to the enclosing scope. A <c>for</c> body and a macro get their
/// own scope, so <c>set</c> inside them does not leak out (Jinja's rule, the reason templates use namespace()).</summary>
public sealed class JinjaScope(JinjaScope? parent = null)
{
    readonly Dictionary<string, object?> vars = new();

    public JinjaScope? Parent { get; } = parent;

    public JinjaScope Root => Parent?.Root ?? this;

    public object? Lookup(string name)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s.vars.TryGetValue(name, out var v)) return v;
        return Undefined.Instance;
    }

    public void Set(string name, object? value) => vars[name] = value;
}

/// <summary>Values and operators of the Jinja that chat templates use, with Python's semantics (truthiness, text of
/// numbers and containers, slicing, comparison), since transformers renders templates with Python's Jinja2.</summary>
public static partial class JinjaValues
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
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        JinjaTuple => "tuple",
        Namespace => "Namespace",
        IDictionary => "dict",
        IList => "list",
        JinjaFunction or Macro => "function",
        JinjaGenerator => "generator",
        _ => v.GetType().Name,
    };

    /// <summary>Python's str() of a value, as <c>{{ x }}</c> prints it.</summary>
    public static string ToText(object? v) => v switch
    {
        Undefined => "",
        string s => s,
        _ => Repr(v),
    };

    /// <summary>Python's repr(): what a value looks like inside a printed list or dict.</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case null: return "None";
            case Undefined: return "Undefined";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StringRepr(s);
            case Namespace ns: return "<Namespace " + DictRepr(ns) + ">";
            case IDictionary<string, object?> d: return DictRepr(d);
            case JinjaTuple t: return "(" + string.Join(", ", t.Select(Repr)) + (t.Count == 1 ? ",)" : ")");
            case IList<object?> l: return "[" + string.Join(", ", l.Select(Repr)) + "]";
            case LoopInfo: return "<LoopContext>";
            case JinjaGenerator: return "<generator object>";
            default: return v.ToString() ?? "";
        }
    }

    static string DictRepr(IDictionary<string, object?> d) => "{" + string.Join(", ", d.Select(p => StringRepr(p.Key) + ": " + Repr(p.Value))) + "}";

    /// <summary>Python's float repr: the shortest round-trip digits, ".0" on integral values, exponent from 1e16 and
    /// below 1e-4.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        // .NET gives "1E+16" / "1E-05"; split mantissa digits and exponent, then lay them out as Python does.
        int e = r.IndexOfAny(['E', 'e']);
        string mantissa = e >= 0 ? r[..e] : r;
        int exp10 = e >= 0 ? int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture) : 0;
        bool negative = mantissa.StartsWith('-');
        if (negative) mantissa = mantissa[1..];
        int dot = mantissa.IndexOf('.');
        string digits = dot >= 0 ? mantissa.Remove(dot, 1) : mantissa;
        int pointPos = (dot >= 0 ? dot : mantissa.Length) + exp10; // decimal point after this many digits
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int decimalExponent = pointPos - 1;
        string text;
        if (decimalExponent >= 16 || decimalExponent < -4)
        {
            string frac = digits.Length > 1 ? "." + digits[1..] : "";
            text = $"{digits[0]}{frac}e{(decimalExponent < 0 ? "-" : "+")}{Math.Abs(decimalExponent):00}";
        }
        else if (pointPos <= 0) text = "0." + new string('0', -pointPos) + digits;
        else if (pointPos >= digits.Length) text = digits + new string('0', pointPos - digits.Length) + ".0";
        else text = digits[..pointPos] + "." + digits[pointPos..];
        return negative ? "-" + text : text;
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ".</summary>
    public static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            if (c == quote || c == '\\') sb.Append('\\').Append((char)c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7F) sb.Append($"\\x{c:x2}");
            else if (!IsPrintable(rune)) sb.Append(c < 0x100 ? $"\\x{c:x2}" : c < 0x10000 ? $"\\u{c:x4}" : $"\\U{c:x8}");
            else sb.Append(rune.ToString());
        }
        return sb.Append(quote).ToString();
    }

    /// <summary>str.isprintable for one character: not Cc, Cf, Cs, Co, Cn, Zl, Zp, nor a space other than ' '.</summary>
    static bool IsPrintable(Rune r)
    {
        var cat = Rune.GetUnicodeCategory(r);
        return cat switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => false,
            UnicodeCategory.SpaceSeparator => r.Value == ' ',
            _ => true,
        };
    }

    /// <summary>Jinja's getattr/getitem: <c>x.name</c> and <c>x['name']</c> both look in mappings.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case IDictionary<string, object?> d:
                return key is string k && d.TryGetValue(k, out var v) ? v : Undefined.Instance;
            case IList<object?> list when key is long or bool:
                long i = key is bool b ? (b ? 1 : 0) : (long)key;
                long at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : Undefined.Instance;
            case string s when key is long ci:
                var runes = s.EnumerateRunes().ToList();
                long c = ci < 0 ? runes.Count + ci : ci;
                return c >= 0 && c < runes.Count ? runes[(int)c].ToString() : Undefined.Instance;
            case LoopInfo loop when key is string name:
                return loop.Get(name);
            case Undefined:
                throw new JinjaException($"'{ToText(key)}' of an undefined value: the variable is not defined");
            case JinjaGenerator when key is long:
                throw new JinjaException("'generator' object is not subscriptable");
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
            string str => str.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
            Undefined => [],
            _ => throw new JinjaException($"cannot slice {TypeName(target)}"),
        };
        int n = items.Count;
        long Norm(object? v, long fallback) => v is long x ? (x < 0 ? Math.Max(x + n, st < 0 ? -1 : 0) : Math.Min(x, st < 0 ? n - 1 : n)) : fallback;
        long from = Norm(start, st > 0 ? 0 : n - 1), to = Norm(stop, st > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = from; st > 0 ? i < to : i > to; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Select(ToText)) : target is JinjaTuple ? new JinjaTuple(result) : result;
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
        if (a is bool ba) a = ba ? 1L : 0L;
        if (b is bool bb) b = bb ? 1L : 0L;
        switch (op, a, b)
        {
            case ("+", string sa, string sb): return sa + sb;
            case ("+", IList<object?> la, IList<object?> lb): return la is JinjaTuple ? new JinjaTuple(la.Concat(lb)) : la.Concat(lb).ToList();
            case ("*", string rep, long times): return string.Concat(Enumerable.Repeat(rep, (int)Math.Max(0, times)));
            case ("*", long times, string rep): return string.Concat(Enumerable.Repeat(rep, (int)Math.Max(0, times)));
            case ("*", IList<object?> list, long times): return Enumerable.Range(0, (int)Math.Max(0, times)).SelectMany(_ => list).ToList();
            case ("%", string format, _): return PercentFormat(format, b);
        }
        if (a is long x && b is long y)
        {
            return op switch
            {
                // object arms: a switch mixing long and double arms would make every result a double.
                "+" => (object)(x + y),
                "-" => x - y,
                "*" => x * y,
                "/" => y == 0 ? throw new JinjaException("division by zero") : (double)x / y,
                "//" => y == 0 ? throw new JinjaException("integer division by zero") : FloorDiv(x, y),
                "%" => y == 0 ? throw new JinjaException("integer modulo by zero") : x - y * FloorDiv(x, y),
                "**" => y >= 0 ? (object)(long)Math.Pow(x, y) : Math.Pow(x, y),
                _ => throw new JinjaException($"unknown operator {op}"),
            };
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double p = ToDouble(a), q = ToDouble(b);
            if (q == 0 && op is "/" or "//" or "%") throw new JinjaException("float division by zero");
            return op switch
            {
                "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q, "//" => Math.Floor(p / q),
                "%" => p - q * Math.Floor(p / q), "**" => Math.Pow(p, q),
                _ => throw new JinjaException($"unknown operator {op}"),
            };
        }
        throw new JinjaException($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    static long FloorDiv(long x, long y) => (long)Math.Floor((double)x / y);

    /// <summary>Python's "%s" formatting, for the %s, %d, %r and %% that templates use.</summary>
    static string PercentFormat(string format, object? args)
    {
        var values = args is JinjaTuple t ? t : (IList<object?>)[args];
        var sb = new StringBuilder();
        int next = 0;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char spec = format[++i];
            if (spec == '%') { sb.Append('%'); continue; }
            if (next >= values.Count) throw new JinjaException("not enough arguments for format string");
            var v = values[next++];
            sb.Append(spec switch
            {
                's' => ToText(v),
                'r' => Repr(v),
                'd' or 'i' => ToText(v is double d ? (long)Math.Truncate(d) : v),
                _ => throw new JinjaException($"format %{spec} is not supported"),
            });
        }
        return sb.ToString();
    }

    public static bool IsNumber(object? v) => v is long or double;

    public static double ToDouble(object? v) => v switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => throw new JinjaException($"{TypeName(v)} is not a number") };

    public static bool JinjaEquals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return ReferenceEquals(a, b);
        if (a is bool x && b is bool y) return x == y;
        if ((IsNumber(a) || a is bool) && (IsNumber(b) || b is bool)) return ToDouble(a) == ToDouble(b);
        if (a is IList<object?> la && b is IList<object?> lb) return (a is JinjaTuple) == (b is JinjaTuple) && la.Count == lb.Count && la.Zip(lb).All(p => JinjaEquals(p.Item1, p.Item2));
        if (a is IDictionary<string, object?> da && b is IDictionary<string, object?> db)
            return da.Count == db.Count && da.All(p => db.TryGetValue(p.Key, out var o) && JinjaEquals(p.Value, o));
        return Equals(a, b);
    }

    public static int Compare(object? a, object? b)
    {
        if ((IsNumber(a) || a is bool) && (IsNumber(b) || b is bool)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is string sa && b is string sb) return MoeCluster.Model.Checkpoints.JsonText.CodePointOrder.Compare(sa, sb); // Python compares code points
        if (a is IList<object?> la && b is IList<object?> lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!JinjaEquals(la[i], lb[i])) return Compare(la[i], lb[i]);
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new JinjaException($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new JinjaException($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        IDictionary<string, object?> d => item is string k && d.ContainsKey(k),
        IList<object?> l => l.Any(x => JinjaEquals(x, item)),
        JinjaGenerator g => g.Consume().Any(x => JinjaEquals(x, item)),
        Undefined => false,
        _ => throw new JinjaException($"argument of type '{TypeName(container)}' is not iterable"),
    };

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        IDictionary<string, object?> d => d.Keys,
        IList<object?> l => l,
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()),
        JinjaGenerator g => g.Consume(),
        Undefined => [],
        _ => throw new JinjaException($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Length(object? v) => v switch
    {
        string s => s.EnumerateRunes().Count(),
        ICollection c => c.Count,
        Undefined => 0,
        _ => throw new JinjaException($"object of type '{TypeName(v)}' has no len()"),
    };
}

/// <summary>The <c>loop</c> variable inside a for block.</summary>
public sealed class LoopInfo(int index, int length, object? previous, object? next, int depth)
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
        "depth" => (long)depth,
        "depth0" => (long)depth - 1,
        "previtem" => index > 0 ? previous : Undefined.Instance,
        "nextitem" => index < length - 1 ? next : Undefined.Instance,
        "cycle" => (JinjaFunction)((args, _) => args.Count == 0 ? throw new JinjaException("no items for cycling given") : args[index % args.Count]),
        _ => Undefined.Instance,
    };
}
