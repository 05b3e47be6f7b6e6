using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Cuts text at added tokens (e.g. <c>&lt;|im_start|&gt;</c>) so each becomes one id, as HF does before
/// normalising and pre-tokenising the rest. Leftmost match wins; at one position the longest token wins.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Regex? _pattern;
    private readonly Dictionary<string, int> _ids;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _ids = tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        if (_ids.Count > 0)
        {
            // .NET alternation is ordered, so longest-first makes the longest token win where two start together.
            string alternatives = string.Join("|", _ids.Keys.OrderByDescending(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).Select(Regex.Escape));
            _pattern = new Regex(alternatives, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
    }

    /// <summary>Text pieces in order; <c>Id</c> is set for an added token and null for plain text between them.</summary>
    public IEnumerable<(string Text, int? Id)> Split(string text)
    {
        if (_pattern is null)
        {
            yield return (text, null);
            yield break;
        }
        int position = 0;
        foreach (Match match in _pattern.Matches(text))
        {
            if (match.Index > position)
            {
                yield return (text[position..match.Index], null);
            }
            yield return (match.Value, _ids[match.Value]);
            position = match.Index + match.Length;
        }
        if (position < text.Length)
        {
            yield return (text[position..], null);
        }
    }
}
