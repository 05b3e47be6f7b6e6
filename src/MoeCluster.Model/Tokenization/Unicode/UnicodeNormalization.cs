using System.Text;

namespace MoeCluster.Model.Tokenization.Unicode;

/// <summary>
/// Unicode normalisation forms (UAX #15) and per-code-point lowercasing in managed code, so a tokenizer.json that asks
/// for NFC gets NFC whatever the process's globalization mode: under <c>InvariantGlobalization</c> (which this project
/// runs with) <see cref="string.Normalize()"/> leaves non-ASCII text untouched. The data comes from the Unicode
/// Character Database (see <see cref="UnicodeTables"/>); Hangul syllables are composed and decomposed algorithmically.
/// </summary>
public static class UnicodeNormalization
{
    private const int HangulBase = 0xAC00, LeadBase = 0x1100, VowelBase = 0x1161, TrailBase = 0x11A7;
    private const int LeadCount = 19, VowelCount = 21, TrailCount = 28, SyllableCount = LeadCount * VowelCount * TrailCount;

    /// <summary>The Unicode version of the tables.</summary>
    public static string UnicodeVersion => UnicodeTables.Instance.Version;

    /// <summary><paramref name="text"/> in <paramref name="form"/>. Lone surrogates pass through unchanged.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        ArgumentNullException.ThrowIfNull(text);
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        // Below these code points every form leaves text as it is (nothing decomposes and nothing composes).
        int quick = compatibility ? 0xA0 : compose ? 0x300 : 0xC0;
        if (AllBelow(text, quick))
        {
            return text;
        }
        var tables = UnicodeTables.Instance;
        var points = Decompose(text, compatibility, tables);
        SortCombiningMarks(points, tables);
        if (compose)
        {
            Compose(points, tables);
        }
        return FromCodePoints(points);
    }

    /// <summary>
    /// Each code point replaced by its full lowercase mapping, as Rust's <c>char::to_lowercase</c> (and so HF's
    /// Lowercase normaliser) does: 'İ' becomes "i̇", and 'Σ' is always 'σ' (no final-sigma rule).
    /// </summary>
    public static string ToLower(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lower = UnicodeTables.Instance.Lowercase;
        var sb = new StringBuilder(text.Length);
        foreach (int cp in CodePoints(text))
        {
            if (lower.TryGetValue(cp, out var mapped))
            {
                foreach (int m in mapped)
                {
                    AppendCodePoint(sb, m);
                }
            }
            else
            {
                AppendCodePoint(sb, cp);
            }
        }
        return sb.ToString();
    }

    private static bool AllBelow(string text, int limit)
    {
        foreach (char c in text)
        {
            if (c >= limit)
            {
                return false;
            }
        }
        return true;
    }

    private static List<int> Decompose(string text, bool compatibility, UnicodeTables tables)
    {
        var points = new List<int>(text.Length + 8);
        foreach (int cp in CodePoints(text))
        {
            int s = cp - HangulBase;
            if (s is >= 0 and < SyllableCount)
            {
                points.Add(LeadBase + s / (VowelCount * TrailCount));
                points.Add(VowelBase + s % (VowelCount * TrailCount) / TrailCount);
                if (s % TrailCount != 0)
                {
                    points.Add(TrailBase + s % TrailCount);
                }
            }
            else if (compatibility && tables.Compatibility.TryGetValue(cp, out var k))
            {
                points.AddRange(k);
            }
            else if (tables.Canonical.TryGetValue(cp, out var d))
            {
                points.AddRange(d);
            }
            else
            {
                points.Add(cp);
            }
        }
        return points;
    }

    /// <summary>Canonical ordering: a stable sort by combining class within each run of non-starters.</summary>
    private static void SortCombiningMarks(List<int> points, UnicodeTables tables)
    {
        for (int i = 1; i < points.Count; i++)
        {
            int ccc = Ccc(points[i], tables);
            if (ccc == 0)
            {
                continue;
            }
            int j = i;
            while (j > 0 && Ccc(points[j - 1], tables) > ccc)
            {
                (points[j - 1], points[j]) = (points[j], points[j - 1]);
                j--;
            }
        }
    }

    /// <summary>Canonical composition: each character joins the last starter unless a character between them blocks it.</summary>
    private static void Compose(List<int> points, UnicodeTables tables)
    {
        int starter = -1;
        int lastClass = -1; // class of the last character kept after the starter; -1 when none
        int write = 0;
        for (int read = 0; read < points.Count; read++)
        {
            int cp = points[read];
            int ccc = Ccc(cp, tables);
            if (starter >= 0 && (lastClass == -1 || lastClass < ccc) && TryCompose(points[starter], cp, tables, out int composed))
            {
                points[starter] = composed;
                continue;
            }
            if (ccc == 0)
            {
                starter = write;
                lastClass = -1;
            }
            else
            {
                lastClass = ccc;
            }
            points[write++] = cp;
        }
        points.RemoveRange(write, points.Count - write);
    }

    private static bool TryCompose(int first, int second, UnicodeTables tables, out int composed)
    {
        int l = first - LeadBase, v = second - VowelBase;
        if (l is >= 0 and < LeadCount && v is >= 0 and < VowelCount)
        {
            composed = HangulBase + (l * VowelCount + v) * TrailCount;
            return true;
        }
        int s = first - HangulBase, t = second - TrailBase;
        if (s is >= 0 and < SyllableCount && s % TrailCount == 0 && t is > 0 and < TrailCount)
        {
            composed = first + t;
            return true;
        }
        return tables.Composition.TryGetValue(UnicodeTables.Pair(first, second), out composed);
    }

    private static int Ccc(int cp, UnicodeTables tables) => tables.CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    /// <summary>Code points of <paramref name="text"/>; a lone surrogate is its own code point.</summary>
    internal static IEnumerable<int> CodePoints(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                yield return char.ConvertToUtf32(c, text[++i]);
            }
            else
            {
                yield return c;
            }
        }
    }

    private static string FromCodePoints(List<int> points)
    {
        var sb = new StringBuilder(points.Count);
        foreach (int cp in points)
        {
            AppendCodePoint(sb, cp);
        }
        return sb.ToString();
    }

    private static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000)
        {
            sb.Append((char)cp);
        }
        else
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }
    }
}
