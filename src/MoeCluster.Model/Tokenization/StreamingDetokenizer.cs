namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Turns generated ids into text one token at a time. A character whose UTF-8 bytes are spread over several tokens
/// (emoji and CJK under byte-level BPE) is held back until its last byte arrives, and a run of SentencePiece
/// &lt;0xNN&gt; fallback bytes until the run ends, so no piece splits a character or a fallback sequence and the pieces
/// returned by <see cref="Append"/> and <see cref="Flush"/> concatenate to exactly <see cref="ModelTokenizer.Decode"/>
/// of the same ids (both run the same <see cref="TextAssembler"/>). Not thread-safe: one per sequence.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly TextAssembler _assembler;

    internal StreamingDetokenizer(TokenTable table, bool skipSpecialTokens) => _assembler = new TextAssembler(table, skipSpecialTokens);

    /// <summary>The text that <paramref name="tokenId"/> completes; empty while a character is still incomplete.</summary>
    public string Append(int tokenId) => _assembler.Append(tokenId);

    /// <summary>
    /// Ends the stream: bytes of a character that never completed come out as U+FFFD, as in Decode.
    /// The detokenizer can be used again afterwards for a new stream.
    /// </summary>
    public string Flush() => _assembler.Flush();
}
