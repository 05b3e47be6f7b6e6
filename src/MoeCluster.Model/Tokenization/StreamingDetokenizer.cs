using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Turns generated ids into text one token at a time. A character whose UTF-8 bytes are spread over several tokens
/// (emoji and CJK under byte-level BPE, or SentencePiece &lt;0xNN&gt; fallback bytes) is held back until its last byte
/// arrives, so the pieces returned by <see cref="Append"/> and <see cref="Flush"/> concatenate to exactly
/// <see cref="ModelTokenizer.Decode"/> of the same ids. Not thread-safe: one per sequence.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly TokenTable _table;
    private readonly bool _skipSpecialTokens;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];
    private bool _atStart;

    internal StreamingDetokenizer(TokenTable table, bool skipSpecialTokens)
    {
        _table = table;
        _skipSpecialTokens = skipSpecialTokens;
        _atStart = table.StripLeadingSpace;
    }

    /// <summary>The text that <paramref name="tokenId"/> completes; empty while a character is still incomplete.</summary>
    public string Append(int tokenId) => Emit(_table.BytesOf(tokenId, _skipSpecialTokens), flush: false);

    /// <summary>
    /// Ends the stream: bytes of a character that never completed come out as U+FFFD, as in Decode.
    /// The detokenizer can be used again afterwards for a new stream.
    /// </summary>
    public string Flush()
    {
        string rest = Emit([], flush: true);
        _utf8.Reset();
        _atStart = _table.StripLeadingSpace;
        return rest;
    }

    private string Emit(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _utf8.GetCharCount(bytes, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }
        int count = _utf8.GetChars(bytes, _chars, flush);
        if (count == 0)
        {
            return "";
        }
        int start = 0;
        if (_atStart)
        {
            _atStart = false;
            start = _chars[0] == ' ' ? 1 : 0;
        }
        return new string(_chars, start, count - start);
    }
}
