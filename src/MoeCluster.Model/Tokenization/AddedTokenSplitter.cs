using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Cuts text at added tokens (e.g. <c>&lt;|im_start|&gt;</c>) so each becomes one id, as HF's AddedVocabulary does
/// before pre-tokenising the rest: leftmost match first, the longest token where several start together, then
/// <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> as added_vocabulary.rs find_matches applies them.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Regex? _pattern;
    private readonly Dictionary<string, AddedToken> _tokens;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _tokens = tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        if (_tokens.Count > 0)
        {
            // .NET alternation is ordered, so longest-first makes the longest token win where two start together.
            string alternatives = string.Join("|", _tokens.Keys.OrderByDescending(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).Select(Regex.Escape));
            _pattern = new Regex(alternatives, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
    }

    public bool IsEmpty => _pattern is null;

    /// <summary>Text pieces in order: <c>Id</c> set for an added token, null for plain text between them
    /// (<c>Start</c> is where the piece begins in <paramref name="text"/>).</summary>
    public List<(string Text, int? Id, int Start)> Split(string text)
    {
        var pieces = new List<(string, int?, int)>();
        int position = 0;
        if (_pattern is not null)
        {
            foreach (Match match in _pattern.Matches(text))
            {
                int start = match.Index, stop = match.Index + match.Length;
                if (start < position)
                {
                    continue; // inside whitespace an earlier rstrip took
                }
                var token = _tokens[match.Value];
                if (token.SingleWord && ((start > 0 && IsWordChar(text, start - 1)) || (stop < text.Length && IsWordChar(text, stop))))
                {
                    continue;
                }
                if (token.LStrip)
                {
                    while (start > position && char.IsWhiteSpace(text[start - 1]))
                    {
                        start--;
                    }
                }
                if (token.RStrip)
                {
                    while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                    {
                        stop++;
                    }
                }
                if (start > position)
                {
                    pieces.Add((text[position..start], null, position));
                }
                pieces.Add((match.Value, token.Id, start));
                position = stop;
            }
        }
        if (position < text.Length)
        {
            pieces.Add((text[position..], null, position));
        }
        return pieces;
    }

    private static bool IsWordChar(string text, int index) => char.IsLetterOrDigit(text[index]) || text[index] == '_';
}
