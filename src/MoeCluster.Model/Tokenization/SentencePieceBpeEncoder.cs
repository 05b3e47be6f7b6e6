using Microsoft.ML.Tokenizers;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// SentencePiece BPE with byte fallback (Llama, Mixtral): Microsoft.ML.Tokenizers' LlamaTokenizer reads the
/// <c>tokenizer.model</c> protobuf and does normalisation, dummy prefix, score-ordered merges and &lt;0xNN&gt; fallback.
/// Control pieces and added tokens are passed as special tokens so they are matched whole in the text, as HF does.
/// </summary>
internal sealed class SentencePieceBpeEncoder : ITextEncoder
{
    private readonly SentencePieceTokenizer _tokenizer;

    public SentencePieceBpeEncoder(string path, IReadOnlyDictionary<string, int> specialTokens)
    {
        try
        {
            using var stream = File.OpenRead(path);
            // BOS/EOS are added by ModelTokenizer from the checkpoint's settings, never by the library.
            _tokenizer = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false,
                specialTokens.Count > 0 ? specialTokens : null);
        }
        catch (Exception ex) when (ex is not IOException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: Microsoft.ML.Tokenizers could not load this SentencePiece model: {ex.Message}", ex);
        }
    }

    public List<int> Encode(string text) =>
        [.. _tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)];
}
