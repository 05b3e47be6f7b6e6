using System.Globalization;
using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A tokenizer.json regex (HF runs these with Oniguruma, on code points) run by .NET's Regex, which works on UTF-16
/// code units: there a character outside the BMP is two surrogates, so <c>\p{L}</c> never matches 𝐀 or 𠀀 and
/// <c>\p{N}</c> never matches 𝟙. Text holding such characters is matched on a stand-in string where each one is
/// replaced by a BMP character of the same general category, and the matches are mapped back.
/// </summary>
internal sealed class TokenizerRegex
{
    private readonly Regex _regex;

    public TokenizerRegex(string pattern, string path)
    {
        Pattern = pattern;
        try
        {
            _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException ex)
        {
            throw new NotSupportedException($"{path}: regex /{pattern}/ is not valid .NET regex syntax: {ex.Message}", ex);
        }
    }

    public string Pattern { get; }

    /// <summary>Non-empty matches as [start, end) offsets into <paramref name="text"/>, left to right.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var result = new List<(int, int)>();
        if (!HasSurrogatePair(text))
        {
            foreach (Match m in _regex.Matches(text))
            {
                if (m.Length > 0)
                {
                    result.Add((m.Index, m.Index + m.Length));
                }
            }
            return result;
        }
        // offsets[j] = where stand-in character j starts in text; offsets[^1] = text.Length.
        var chars = new char[text.Length];
        var offsets = new List<int>(text.Length + 1);
        int n = 0;
        for (int i = 0; i < text.Length; i++)
        {
            offsets.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                chars[n++] = StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1])));
                i++;
            }
            else
            {
                chars[n++] = text[i];
            }
        }
        offsets.Add(text.Length);
        foreach (Match m in _regex.Matches(new string(chars, 0, n)))
        {
            if (m.Length > 0)
            {
                result.Add((offsets[m.Index], offsets[m.Index + m.Length]));
            }
        }
        return result;
    }

    private static bool HasSurrogatePair(string text)
    {
        for (int i = 0; i + 1 < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && char.IsLowSurrogate(text[i + 1]))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A BMP character of <paramref name="category"/> that tokenizer patterns never name literally.</summary>
    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\uFF21',       // Ａ
        UnicodeCategory.LowercaseLetter => '\uFF41',       // ａ
        UnicodeCategory.TitlecaseLetter => '\u01C5',       // ǅ
        UnicodeCategory.ModifierLetter => '\u02B0',        // ʰ
        UnicodeCategory.OtherLetter => '\u05D0',           // א
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',    // ٠
        UnicodeCategory.LetterNumber => '\u16EE',          // ᛮ
        UnicodeCategory.OtherNumber => '\u00B2',           // ²
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',      // ¡
        UnicodeCategory.MathSymbol => '\u00B1',            // ±
        UnicodeCategory.CurrencySymbol => '\u00A2',        // ¢
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u00A6',           // ¦
        UnicodeCategory.Format => '\u200B',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378',                                     // unassigned
    };
}
