namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A token matched whole in the input before any splitting (HF "added token"): chat markers, end-of-text and the like.
/// <paramref name="Special"/> tokens are dropped when decoding with skipSpecialTokens.
/// </summary>
internal readonly record struct AddedToken(string Content, int Id, bool Special);
