using System.Globalization;
using System.Text;

namespace MoeCluster.Node.Chat.Jinja;

/// <summary>The Python str, dict and list methods templates call (<c>content.strip()</c>, <c>d.items()</c>...), with
/// Python's semantics. Methods that change a value are refused, as transformers' immutable sandbox refuses them.</summary>
public static partial class JinjaValues
{
    public static object? CallMethod(object? target, string name, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        object? A(int i, string key, object? fallback = null) => Arg(args, kwargs, i, key, fallback);
        switch (target)
        {
            case string s:
                return name switch
                {
                    "strip" => PyStrip(s, A(0, "chars") as string, true, true),
                    "lstrip" => PyStrip(s, A(0, "chars") as string, true, false),
                    "rstrip" => PyStrip(s, A(0, "chars") as string, false, true),
                    "upper" => s.ToUpperInvariant(),
                    "lower" => s.ToLowerInvariant(),
                    "title" => PyTitle(s),
                    "capitalize" => Capitalize(s),
                    "swapcase" => string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c))),
                    "startswith" => Affix(s, A(0, "prefix"), (x, p) => x.StartsWith(p, StringComparison.Ordinal)),
                    "endswith" => Affix(s, A(0, "suffix"), (x, p) => x.EndsWith(p, StringComparison.Ordinal)),
                    "replace" when kwargs.Count > 0 => throw new JinjaException("str.replace() takes no keyword arguments"),
                    "replace" => PyReplace(s, ToText(A(0, "old")), ToText(A(1, "new")), A(2, "count") is long c ? c : -1),
                    "split" => PySplit(s, A(0, "sep") as string, A(1, "maxsplit") is long m ? m : -1),
                    "rsplit" => PyRSplit(s, A(0, "sep") as string, A(1, "maxsplit") is long rm ? rm : -1),
                    "splitlines" => s.Split('\n').Select((l, i) => (object?)l.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : s.Split('\n').Length).ToList(),
                    "find" => (long)s.IndexOf(ToText(A(0, "sub")), StringComparison.Ordinal),
                    "rfind" => (long)s.LastIndexOf(ToText(A(0, "sub")), StringComparison.Ordinal),
                    "index" => s.IndexOf(ToText(A(0, "sub")), StringComparison.Ordinal) is var at and >= 0 ? (long)at : throw new JinjaException("substring not found"),
                    "count" => (long)CountOccurrences(s, ToText(A(0, "sub"))),
                    "join" => string.Join(s, Iterate(A(0, "iterable")).Select(x => x as string ?? throw new JinjaException($"sequence item: expected str instance, {TypeName(x)} found"))),
                    "isdigit" => s.Length > 0 && s.All(char.IsDigit),
                    "isnumeric" => s.Length > 0 && s.All(char.IsNumber),
                    "isalpha" => s.Length > 0 && s.All(char.IsLetter),
                    "isalnum" => s.Length > 0 && s.All(char.IsLetterOrDigit),
                    "isspace" => s.Length > 0 && s.All(char.IsWhiteSpace),
                    "islower" => s.Any(char.IsLetter) && s == s.ToLowerInvariant(),
                    "isupper" => s.Any(char.IsLetter) && s == s.ToUpperInvariant(),
                    "removeprefix" => ToText(A(0, "prefix")) is var p && s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s,
                    "removesuffix" => ToText(A(0, "suffix")) is var x && x.Length > 0 && s.EndsWith(x, StringComparison.Ordinal) ? s[..^x.Length] : s,
                    "zfill" => s.PadLeft((int)(long)A(0, "width")!, '0'),
                    "ljust" => s.PadRight((int)(long)A(0, "width")!, ToText(A(1, "fillchar", " "))[0]),
                    "rjust" => s.PadLeft((int)(long)A(0, "width")!, ToText(A(1, "fillchar", " "))[0]),
                    "center" => ApplyFilter("center", s, args, kwargs),
                    "format" => StrFormat(s, args, kwargs),
                    _ => throw new JinjaException($"'str' object has no attribute '{name}'"),
                };
            case IDictionary<string, object?> d when target is not Namespace:
                return name switch
                {
                    "get" => d.TryGetValue(ToText(A(0, "key")), out var v) ? v : A(1, "default"),
                    "items" => d.Select(p => (object?)new JinjaTuple([p.Key, p.Value])).ToList(),
                    "keys" => d.Keys.Select(k => (object?)k).ToList(),
                    "values" => d.Values.ToList(),
                    "copy" => new Dictionary<string, object?>(d),
                    "update" or "pop" or "setdefault" or "clear" or "popitem" =>
                        throw new JinjaException($"access to attribute '{name}' of 'dict' object is unsafe (the sandbox keeps values immutable)"),
                    _ => throw new JinjaException($"'dict' object has no attribute '{name}'"),
                };
            case IList<object?> l:
                return name switch
                {
                    "index" => l.Select((x, i) => (x, i)).FirstOrDefault(p => JinjaEquals(p.x, A(0, "value")), (null, -1)).Item2 is var i and >= 0 ? (long)i : throw new JinjaException("value is not in list"),
                    "count" => (long)l.Count(x => JinjaEquals(x, A(0, "value"))),
                    "copy" => l.ToList(),
                    "append" or "extend" or "insert" or "pop" or "remove" or "sort" or "reverse" or "clear" =>
                        throw new JinjaException($"access to attribute '{name}' of '{TypeName(l)}' object is unsafe (the sandbox keeps values immutable)"),
                    _ => throw new JinjaException($"'{TypeName(l)}' object has no attribute '{name}'"),
                };
            case Undefined:
                throw new JinjaException($"'{name}' of an undefined value: the variable is not defined");
        }
        var member = GetItem(target, name);
        return member is JinjaFunction f ? f(args, kwargs) : member is Macro m2 ? m2.Call(args, kwargs) : throw new JinjaException($"'{TypeName(target)}' object has no attribute '{name}'");
    }

    static bool Affix(string s, object? affix, Func<string, string, bool> test) =>
        affix is IList<object?> options ? options.Any(o => test(s, ToText(o))) : test(s, ToText(affix));

    /// <summary>Python's strip family: whitespace (str.isspace) by default, else the given characters.</summary>
    public static string PyStrip(string s, string? chars, bool left, bool right)
    {
        int start = 0, end = s.Length;
        bool Strippable(char c) => chars is null ? char.IsWhiteSpace(c) || c is '\x1C' or '\x1D' or '\x1E' or '\x1F' : chars.Contains(c);
        if (left) while (start < end && Strippable(s[start])) start++;
        if (right) while (end > start && Strippable(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>Python's str.replace, including an empty old string (inserted between every character) and a count.</summary>
    public static string PyReplace(string s, string old, string replacement, long count)
    {
        if (count == 0) return s;
        var sb = new StringBuilder();
        long done = 0;
        if (old.Length == 0)
        {
            var runes = s.EnumerateRunes().ToList();
            for (int i = 0; i <= runes.Count; i++)
            {
                if (count < 0 || done < count) { sb.Append(replacement); done++; }
                if (i < runes.Count) sb.Append(runes[i].ToString());
            }
            return sb.ToString();
        }
        int pos = 0;
        while (count < 0 || done < count)
        {
            int at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
            done++;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    static List<object?> PySplit(string s, string? sep, long maxsplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxsplit >= 0 && parts.Count == maxsplit) { parts.Add(s[i..]); break; }
                int start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        if (sep.Length == 0) throw new JinjaException("empty separator");
        int pos = 0;
        while (maxsplit < 0 || parts.Count < maxsplit)
        {
            int at = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[pos..at]);
            pos = at + sep.Length;
        }
        parts.Add(s[pos..]);
        return parts;
    }

    static List<object?> PyRSplit(string s, string? sep, long maxsplit)
    {
        if (maxsplit < 0) return PySplit(s, sep, -1);
        if (sep is null)
        {
            var words = PySplit(s, null, -1);
            if (words.Count <= maxsplit + 1) return words;
            int keep = words.Count - (int)maxsplit;
            // The head is the text up to the end of the first kept word, whitespace inside it as written.
            int end = s.Length;
            for (int w = words.Count - 1; w >= keep; w--) end = s.LastIndexOf((string)words[w]!, end - 1, StringComparison.Ordinal);
            return [s[..end].Trim(), .. words.Skip(keep)];
        }
        var parts = new List<object?>();
        int pos = s.Length;
        while (parts.Count < maxsplit)
        {
            int at = pos - sep.Length < 0 ? -1 : s.LastIndexOf(sep, pos - 1, StringComparison.Ordinal);
            if (at < 0 || at + sep.Length > pos) break;
            parts.Insert(0, s[(at + sep.Length)..pos]);
            pos = at;
        }
        parts.Insert(0, s[..pos]);
        return parts;
    }

    static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    /// <summary>str.format with {} / {0} / {name} fields (no format specs).</summary>
    static string StrFormat(string format, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < format.Length && format[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{') { sb.Append(c); continue; }
            int close = format.IndexOf('}', i);
            if (close < 0) throw new JinjaException("Single '{' encountered in format string");
            string field = format[(i + 1)..close];
            object? value = field.Length == 0 ? args[auto++]
                : int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? args[n]
                : kwargs.TryGetValue(field, out var k) ? k : throw new JinjaException($"format field '{field}' is not given");
            sb.Append(ToText(value));
            i = close;
        }
        return sb.ToString();
    }

    static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.EnumerateRunes().Count() + 1;
        int n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
