namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A token matched whole in the input before any splitting (HF "added token"): chat markers, end-of-text and the like.
/// <paramref name="Special"/> tokens are dropped when decoding with skipSpecialTokens. <paramref name="Normalized"/>
/// tokens are looked for in the normalised text, the others in the raw text; <paramref name="LStrip"/> and
/// <paramref name="RStrip"/> swallow the whitespace beside a match; a <paramref name="SingleWord"/> token only matches
/// as a whole word.
/// </summary>
internal readonly record struct AddedToken(string Content, int Id, bool Special, bool Normalized = false,
    bool LStrip = false, bool RStrip = false, bool SingleWord = false);
