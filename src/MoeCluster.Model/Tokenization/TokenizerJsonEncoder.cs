namespace MoeCluster.Model.Tokenization;

/// <summary>Turns text into ids (no BOS/EOS); the ids-to-text direction is shared in <see cref="TokenTable"/>.</summary>
internal interface ITextEncoder
{
    List<int> Encode(string text);
}

/// <summary>
/// A tokenizer.json run the way HF tokenizers' encode runs it (tokenizer/mod.rs encode_single_sequence): added tokens
/// that are not normalised are cut out of the raw text; each remaining segment is normalised, then cut at the
/// normalised added tokens; every plain segment is pre-tokenised into pieces; the BPE model encodes each piece.
/// </summary>
internal sealed class TokenizerJsonEncoder : ITextEncoder
{
    private readonly AddedTokenSplitter _raw;
    private readonly AddedTokenSplitter _normalizedTokens;
    private readonly NormalizerStep? _normalizer;
    private readonly PreTokenizerStep? _preTokenizer;
    private readonly BpeModel _model;

    public TokenizerJsonEncoder(TokenizerJsonFile file, IReadOnlyCollection<AddedToken> addedTokens)
    {
        _normalizer = file.Normalizer;
        _preTokenizer = file.PreTokenizer;
        _model = file.CreateModel();
        _raw = new AddedTokenSplitter(addedTokens.Where(t => !t.Normalized));
        // Normalised added tokens are looked for in normalised text, so their own text is normalised too.
        _normalizedTokens = new AddedTokenSplitter(addedTokens.Where(t => t.Normalized)
            .Select(t => t with { Content = _normalizer?.Apply(t.Content) ?? t.Content }));
    }

    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (segment, addedId, start) in _raw.Split(text))
        {
            if (addedId is int id)
            {
                ids.Add(id);
                continue;
            }
            string normalized = _normalizer?.Apply(segment) ?? segment;
            foreach (var (part, normalizedId, partStart) in _normalizedTokens.Split(normalized))
            {
                if (normalizedId is int nid)
                {
                    ids.Add(nid);
                    continue;
                }
                var piece = new Piece(part, AtStart: start == 0 && partStart == 0);
                if (_preTokenizer is null)
                {
                    _model.Encode(piece.Text, ids);
                    continue;
                }
                var pieces = new List<Piece>();
                _preTokenizer.Split(piece, pieces);
                foreach (var p in pieces)
                {
                    _model.Encode(p.Text, ids);
                }
            }
        }
        return ids;
    }
}
