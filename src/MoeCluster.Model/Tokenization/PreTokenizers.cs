using System.Globalization;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A piece of text on its way to the BPE model. <see cref="AtStart"/>: it begins at offset 0 of the input, which
/// Metaspace's <c>prepend_scheme: "first"</c> looks at.
/// </summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>How a split keeps the delimiters it finds (HF's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>One step of a tokenizer.json <c>pre_tokenizer</c> (tokenizers/src/pre_tokenizers): each input piece is
/// cut into smaller pieces; the BPE model then runs on each piece alone.</summary>
internal abstract record PreTokenizerStep
{
    public abstract void Split(Piece piece, List<Piece> output);

    /// <summary>HF's NormalizedString::split: the spans of <paramref name="piece"/> marked as delimiter or not, arranged
    /// by <paramref name="behavior"/>, empty spans dropped.</summary>
    protected static void SplitSpans(Piece piece, List<(int Start, int End, bool Match)> spans, SplitBehavior behavior, List<Piece> output)
    {
        var kept = new List<(int Start, int End)>(spans.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                kept.AddRange(spans.Select(s => (s.Start, s.End)));
                break;
            case SplitBehavior.Removed:
                kept.AddRange(spans.Where(s => !s.Match).Select(s => (s.Start, s.End)));
                break;
            case SplitBehavior.Contiguous:
                foreach (var s in spans)
                {
                    if (s.Match == previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, s.End);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End));
                    }
                    previousMatch = s.Match;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in spans)
                {
                    if (s.Match && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, s.End);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End));
                    }
                    previousMatch = s.Match;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.Match && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (s.Start, kept[^1].End);
                    }
                    else
                    {
                        kept.Add((s.Start, s.End));
                    }
                    previousMatch = s.Match;
                }
                kept.Reverse();
                break;
        }
        foreach (var (start, end) in kept)
        {
            if (end > start)
            {
                output.Add(new Piece(piece.Text[start..end], piece.AtStart && start == 0));
            }
        }
    }

    /// <summary>The whole text as alternating gap and match spans (HF's Pattern::find_matches), optionally inverted.</summary>
    protected static List<(int, int, bool)> Spans(string text, IEnumerable<(int Start, int End)> matches, bool invert)
    {
        var spans = new List<(int, int, bool)>();
        int position = 0;
        foreach (var (start, end) in matches)
        {
            if (start > position)
            {
                spans.Add((position, start, invert));
            }
            spans.Add((start, end, !invert));
            position = end;
        }
        if (position < text.Length || spans.Count == 0)
        {
            spans.Add((position, text.Length, invert));
        }
        return spans;
    }

    /// <summary>Each code point matching <paramref name="predicate"/> as its own match.</summary>
    protected static IEnumerable<(int, int)> CharMatches(string text, Func<int, bool> predicate)
    {
        for (int i = 0; i < text.Length;)
        {
            int length = char.IsSurrogatePair(text, i) ? 2 : 1;
            int cp = length == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            if (predicate(cp))
            {
                yield return (i, i + length);
            }
            i += length;
        }
    }

    protected static UnicodeCategory Category(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);
}

/// <summary>Split: a regex or literal string, with a delimiter behaviour and optional inversion.</summary>
internal sealed record SplitPreTokenizer(TokenizerRegex Pattern, SplitBehavior Behavior, bool Invert) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output) =>
        SplitSpans(piece, Spans(piece.Text, Pattern.Matches(piece.Text), Invert), Behavior, output);
}

/// <summary>
/// ByteLevel: an optional leading space for each piece, the GPT-2 regex split when <c>use_regex</c>, then every piece
/// spelled in the byte alphabet (<see cref="ByteLevelAlphabet"/>) that byte-level vocabularies use.
/// </summary>
internal sealed record ByteLevelPreTokenizer(bool AddPrefixSpace, TokenizerRegex? Gpt2Split) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output)
    {
        string text = AddPrefixSpace && !piece.Text.StartsWith(' ') ? " " + piece.Text : piece.Text;
        var pieces = new List<Piece>();
        if (Gpt2Split is null)
        {
            pieces.Add(piece with { Text = text });
        }
        else
        {
            SplitSpans(piece with { Text = text }, Spans(text, Gpt2Split.Matches(text), invert: false), SplitBehavior.Isolated, pieces);
        }
        foreach (var p in pieces)
        {
            output.Add(p with { Text = ByteLevelAlphabet.Encode(p.Text) });
        }
    }
}

/// <summary>Metaspace: spaces become the replacement ('▁'), which is prepended by the scheme and split on when asked.</summary>
internal sealed record MetaspacePreTokenizer(char Replacement, string PrependScheme, bool SplitOnReplacement) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output)
    {
        string text = piece.Text.Replace(' ', Replacement);
        bool prepend = PrependScheme switch
        {
            "always" => true,
            "first" => piece.AtStart,
            _ => false,
        };
        if (prepend && !text.StartsWith(Replacement))
        {
            text = Replacement + text;
        }
        var replaced = piece with { Text = text };
        if (!SplitOnReplacement)
        {
            output.Add(replaced);
            return;
        }
        SplitSpans(replaced, Spans(text, CharMatches(text, cp => cp == Replacement), invert: false), SplitBehavior.MergedWithNext, output);
    }
}

/// <summary>Digits: numbers apart from the rest, each digit alone when <c>individual_digits</c>.</summary>
internal sealed record DigitsPreTokenizer(bool Individual) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output) =>
        SplitSpans(piece, Spans(piece.Text, CharMatches(piece.Text, IsNumeric), invert: false),
            Individual ? SplitBehavior.Isolated : SplitBehavior.Contiguous, output);

    /// <summary>Rust's char::is_numeric: Nd, Nl and No.</summary>
    private static bool IsNumeric(int cp) => Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
}

/// <summary>WhitespaceSplit: pieces between whitespace.</summary>
internal sealed record WhitespaceSplitPreTokenizer : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output) =>
        SplitSpans(piece, Spans(piece.Text, CharMatches(piece.Text, cp => cp < 0x10000 && char.IsWhiteSpace((char)cp)), invert: false),
            SplitBehavior.Removed, output);
}

/// <summary>Punctuation: ASCII punctuation and Unicode P* characters as delimiters.</summary>
internal sealed record PunctuationPreTokenizer(SplitBehavior Behavior) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output) =>
        SplitSpans(piece, Spans(piece.Text, CharMatches(piece.Text, IsPunctuation), invert: false), Behavior, output);

    private static bool IsPunctuation(int cp) =>
        (cp < 0x80 && char.IsAsciiLetterOrDigit((char)cp) == false && cp > 0x20 && cp < 0x7F) || Category(cp) is UnicodeCategory.ConnectorPunctuation
            or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
}

/// <summary>CharDelimiterSplit: pieces between one delimiter character.</summary>
internal sealed record CharDelimiterPreTokenizer(char Delimiter) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output) =>
        SplitSpans(piece, Spans(piece.Text, CharMatches(piece.Text, cp => cp == Delimiter), invert: false), SplitBehavior.Removed, output);
}

internal sealed record SequencePreTokenizer(IReadOnlyList<PreTokenizerStep> Steps) : PreTokenizerStep
{
    public override void Split(Piece piece, List<Piece> output)
    {
        var pieces = new List<Piece> { piece };
        foreach (var step in Steps)
        {
            var next = new List<Piece>(pieces.Count * 2);
            foreach (var p in pieces)
            {
                step.Split(p, next);
            }
            pieces = next;
        }
        output.AddRange(pieces);
    }
}
