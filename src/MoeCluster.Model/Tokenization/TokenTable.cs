using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>How a run of consecutive byte-fallback tokens (&lt;0xNN&gt;) that is not valid UTF-8 is shown.</summary>
internal enum ByteFallbackPolicy
{
    /// <summary>HF tokenizers' ByteFallback decoder: the whole run becomes one U+FFFD per byte.</summary>
    WholeRun,
    /// <summary>SentencePiece's decoder: valid characters of the run are kept, each invalid byte becomes U+FFFD.</summary>
    PerByte,
}

/// <summary>
/// Ids back to text, shared by every tokenizer kind: each id stands for a run of UTF-8 bytes (a byte-level BPE token,
/// a SentencePiece-style piece with '▁' as space) or for one byte-fallback byte. Working in bytes is what lets a
/// character split over several tokens come out whole. <see cref="TextAssembler"/> does the joining, for
/// <see cref="Decode"/> and for streaming alike, so the two cannot disagree.
/// </summary>
internal sealed class TokenTable
{
    private readonly byte[]?[] _bytes;
    private readonly bool[] _special;
    private readonly short[] _fallbackByte;

    public TokenTable(int size, bool stripLeadingSpace, ByteFallbackPolicy policy = ByteFallbackPolicy.WholeRun)
    {
        _bytes = new byte[]?[size];
        _special = new bool[size];
        _fallbackByte = new short[size];
        Array.Fill(_fallbackByte, (short)-1);
        StripLeadingSpace = stripLeadingSpace;
        Policy = policy;
    }

    /// <summary>The one space a SentencePiece-style tokenizer put before the text is taken off again.</summary>
    public bool StripLeadingSpace { get; }

    public ByteFallbackPolicy Policy { get; }

    public int Size => _bytes.Length;

    public void Set(int id, byte[] bytes, bool special)
    {
        _bytes[id] = bytes;
        _special[id] |= special;
    }

    /// <summary>Marks <paramref name="id"/> as the byte-fallback token for <paramref name="value"/>.</summary>
    public void SetFallbackByte(int id, byte value)
    {
        _bytes[id] = [value];
        _fallbackByte[id] = value;
    }

    public void MarkSpecial(int id)
    {
        if ((uint)id < (uint)_special.Length)
        {
            _special[id] = true;
        }
    }

    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    /// <summary>The byte a byte-fallback token stands for, or -1 for any other id.</summary>
    public int FallbackByte(int id) => (uint)id < (uint)_fallbackByte.Length ? _fallbackByte[id] : -1;

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
        var assembler = new TextAssembler(this, skipSpecialTokens);
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            sb.Append(assembler.Append(id));
        }
        return sb.Append(assembler.Flush()).ToString();
    }
}

/// <summary>
/// Joins the bytes of ids into text one id at a time, holding back what is not final yet: the bytes of a character
/// whose last byte has not arrived, and a run of byte-fallback tokens until the run ends (whether it is valid UTF-8
/// decides how all of it is shown). Not thread-safe.
/// </summary>
internal sealed class TextAssembler
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly TokenTable _table;
    private readonly bool _skipSpecialTokens;
    // Invalid or cut-off UTF-8 becomes U+FFFD per maximal subpart, as Rust's from_utf8_lossy does in HF's ByteLevel decoder.
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private readonly List<byte> _run = [];
    private char[] _chars = new char[64];
    private bool _atStart;

    public TextAssembler(TokenTable table, bool skipSpecialTokens)
    {
        _table = table;
        _skipSpecialTokens = skipSpecialTokens;
        _atStart = table.StripLeadingSpace;
    }

    public string Append(int id)
    {
        var bytes = _table.BytesOf(id, _skipSpecialTokens);
        if (bytes.IsEmpty)
        {
            return "";
        }
        int fallback = _table.FallbackByte(id);
        if (fallback >= 0)
        {
            _run.Add((byte)fallback);
            return "";
        }
        string run = EndRun();
        return Strip(run + Chars(bytes, flush: false));
    }

    /// <summary>Ends the stream: what was held back comes out (incomplete characters as U+FFFD), and the assembler
    /// starts over.</summary>
    public string Flush()
    {
        string rest = Strip(EndRun() + Chars([], flush: true));
        _utf8.Reset();
        _atStart = _table.StripLeadingSpace;
        return rest;
    }

    private string EndRun()
    {
        if (_run.Count == 0)
        {
            return "";
        }
        // Whatever the UTF-8 decoder holds comes first: it was written before the run.
        string pending = Chars([], flush: true);
        byte[] run = [.. _run];
        _run.Clear();
        return pending + (_table.Policy == ByteFallbackPolicy.WholeRun ? WholeRun(run) : PerByte(run));
    }

    private static string WholeRun(byte[] run)
    {
        try
        {
            return StrictUtf8.GetString(run);
        }
        catch (DecoderFallbackException)
        {
            return new string('\uFFFD', run.Length);
        }
    }

    /// <summary>SentencePiece's rule: a valid character is taken whole, anything else costs one byte and one U+FFFD.</summary>
    private static string PerByte(byte[] run)
    {
        var sb = new StringBuilder(run.Length);
        int i = 0;
        while (i < run.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(run.AsSpan(i), out var rune, out int consumed) == System.Buffers.OperationStatus.Done)
            {
                sb.Append(rune.ToString());
                i += consumed;
            }
            else
            {
                sb.Append('\uFFFD');
                i++;
            }
        }
        return sb.ToString();
    }

    private string Chars(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _utf8.GetCharCount(bytes, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }
        int count = _utf8.GetChars(bytes, _chars, flush);
        return count == 0 ? "" : new string(_chars, 0, count);
    }

    private string Strip(string text)
    {
        if (!_atStart || text.Length == 0)
        {
            return text;
        }
        _atStart = false;
        return text[0] == ' ' ? text[1..] : text;
    }
}
