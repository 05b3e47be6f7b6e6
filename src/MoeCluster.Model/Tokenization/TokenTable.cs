using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Ids back to text, shared by both tokenizer kinds: each id stands for a run of UTF-8 bytes (a byte-level BPE
/// token, a SentencePiece piece with '▁' as space, or one &lt;0xNN&gt; fallback byte), and the decoded text is those
/// bytes read as UTF-8. Working in bytes is what lets a character split over several tokens come out whole.
/// </summary>
internal sealed class TokenTable
{
    private readonly byte[]?[] _bytes;
    private readonly bool[] _special;

    public TokenTable(int size, bool stripLeadingSpace)
    {
        _bytes = new byte[]?[size];
        _special = new bool[size];
        StripLeadingSpace = stripLeadingSpace;
    }

    /// <summary>SentencePiece's dummy prefix: the one space it put before the text is taken off again (HF's Strip decoder).</summary>
    public bool StripLeadingSpace { get; }

    public int Size => _bytes.Length;

    public void Set(int id, byte[] bytes, bool special)
    {
        _bytes[id] = bytes;
        _special[id] |= special;
    }

    public void MarkSpecial(int id)
    {
        if ((uint)id < (uint)_special.Length)
        {
            _special[id] = true;
        }
    }

    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    /// <summary>
    /// The bytes <paramref name="id"/> contributes. Ids outside the vocabulary (a model's padded embedding rows)
    /// contribute nothing, as in HF's decode.
    /// </summary>
    public ReadOnlySpan<byte> BytesOf(int id, bool skipSpecialTokens)
    {
        if ((uint)id >= (uint)_bytes.Length || _bytes[id] is not { } bytes || (skipSpecialTokens && _special[id]))
        {
            return [];
        }
        return bytes;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var buffer = new List<byte>();
        foreach (int id in ids)
        {
            buffer.AddRange(BytesOf(id, skipSpecialTokens));
        }
        // Invalid or cut-off UTF-8 becomes U+FFFD, the same replacement the streaming decoder makes.
        string text = Encoding.UTF8.GetString([.. buffer]);
        return StripLeadingSpace && text.StartsWith(' ') ? text[1..] : text;
    }
}
