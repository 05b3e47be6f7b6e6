using System.Text;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class StreamingDetokenizerSpec : IDisposable
{
    private readonly TokenizerDirectory _dir = new();

    public StreamingDetokenizerSpec() => _dir.WriteTrainedByteLevel();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("plain ascii text\nwith lines")]
    [InlineData("数据 unseen 龍 mixed 🙂 rocket 🚀 family 👩‍👩‍👧")]
    [InlineData("ünïcödé ß ŧ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢")]
    public void Concatenated_pieces_equal_decode_of_all_ids(string text)
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode(text);
        var stream = tokenizer.CreateStreamingDetokenizer();
        string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
        Assert.Equal(tokenizer.Decode(ids), streamed);
        Assert.Equal(text, streamed);
    }

    [Fact]
    public void A_character_split_across_byte_tokens_is_held_back_until_complete()
    {
        var tokenizer = _dir.Load();
        // 龍 (E9 BE 8D) is not in the training corpus, so it can only be spelled as three single-byte tokens.
        var ids = "龍"u8.ToArray().Select(b => tokenizer.TokenToId(ByteLevelAlphabet.CharFor(b).ToString())!.Value).ToList();
        Assert.Equal(ids, tokenizer.Encode("龍"));

        var stream = tokenizer.CreateStreamingDetokenizer();
        Assert.Equal("", stream.Append(ids[0]));
        Assert.Equal("", stream.Append(ids[1]));
        Assert.Equal("龍", stream.Append(ids[2]));
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void Special_tokens_are_skipped_or_kept_as_asked_while_streaming()
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode($"{TokenizerDirectory.ImStart}hi 🙂{TokenizerDirectory.ImEnd}");
        foreach (bool skip in new[] { true, false })
        {
            var stream = tokenizer.CreateStreamingDetokenizer(skipSpecialTokens: skip);
            string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
            Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: skip), streamed);
        }
    }

    [Fact]
    public void Truncated_or_invalid_utf8_matches_decode_with_replacement_characters()
    {
        var tokenizer = _dir.Load();
        int ByteId(byte b) => tokenizer.TokenToId(ByteLevelAlphabet.CharFor(b).ToString())!.Value;
        // A stray continuation byte, a lead byte cut off by ASCII, and a lead byte left open at the end.
        int[] ids = [ByteId(0x80), ByteId((byte)'a'), ByteId(0xE9), ByteId((byte)'b'), ByteId(0xF0), ByteId(0x9F)];

        var stream = tokenizer.CreateStreamingDetokenizer();
        string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
        string decoded = tokenizer.Decode(ids);
        Assert.Equal(decoded, streamed);
        Assert.Equal(Encoding.UTF8.GetString([0x80, (byte)'a', 0xE9, (byte)'b', 0xF0, 0x9F]), decoded);
        Assert.Contains('\uFFFD', decoded);
    }
}
