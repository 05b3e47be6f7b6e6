using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class SentencePieceTokenizerSpec : IDisposable
{
    // Ids 0..258 are <unk>, <s>, </s> and the 256 byte pieces; the text pieces follow.
    private static readonly List<SentencePiece> Pieces = BuildPieces();
    private readonly TokenizerDirectory _dir = new();

    public SentencePieceTokenizerSpec()
    {
        File.WriteAllBytes(_dir.File("tokenizer.model"), SentencePieceModelWriter.Encode(Pieces));
    }

    public void Dispose() => _dir.Dispose();

    private static int Id(string piece) => Pieces.FindIndex(p => p.Piece == piece);

    /// <summary>
    /// SentencePiece BPE merges by piece score: chars score low, and the chain ll, ▁H, ▁He, ▁Hell, ▁Hello (and the
    /// same for ▁world) is ordered so each step's best pair leads to the whole word.
    /// </summary>
    private static List<SentencePiece> BuildPieces()
    {
        var pieces = SentencePieceModelWriter.LlamaStylePrefix();
        string[] merged = ["ll", "▁H", "▁He", "▁Hell", "▁Hello", "or", "▁w", "▁wor", "▁worl", "▁world", "▁t", "he", "▁the"];
        for (int i = 0; i < merged.Length; i++)
        {
            pieces.Add(new(merged[i], -1 - i, SentencePieceType.Normal));
        }
        string chars = "▁abcdefghijklmnopqrstuvwxyzHTW.,!";
        for (int i = 0; i < chars.Length; i++)
        {
            pieces.Add(new(chars[i].ToString(), -100 - i, SentencePieceType.Normal));
        }
        return pieces;
    }

    [Fact]
    public void Words_merge_by_score_with_a_dummy_prefix_and_bos_first()
    {
        var tokenizer = _dir.Load();
        Assert.Equal(ModelTokenizer.SentencePieceBpeKind, tokenizer.Kind);
        Assert.Equal([1, Id("▁Hello"), Id("▁world")], tokenizer.Encode("Hello world"));
        Assert.Equal("Hello world", tokenizer.Decode([1, Id("▁Hello"), Id("▁world")]));
    }

    [Theory]
    [InlineData("Hello world, the end.")]
    [InlineData("  leading spaces and   runs of spaces  ")]
    [InlineData("line one\nline two\n\n\tTabbed\r\n")]
    [InlineData("Unknown letters: QXZ 0123456789 {}[]")]
    [InlineData("数据模型 专家")]
    [InlineData("emoji 🙂🚀 and 👩‍👩‍👧")]
    public void Decode_of_encode_gives_back_the_text_using_byte_fallback(string text)
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Characters_outside_the_pieces_fall_back_to_utf8_byte_pieces()
    {
        var tokenizer = _dir.Load();
        // 数 is E6 95 B0: three <0xNN> pieces at 3 + byte value.
        var ids = tokenizer.Encode("数", addSpecialTokens: false);
        Assert.Equal(new[] { 0xE6, 0x95, 0xB0 }.Select(b => 3 + b), ids.Where(id => id >= 3 && id < 259));
        Assert.DoesNotContain(0, ids); // never <unk> with byte fallback
    }

    [Fact]
    public void Bos_is_added_by_default_and_eos_and_ids_come_from_the_model_when_no_configs_exist()
    {
        var tokenizer = _dir.Load();
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal([2], tokenizer.EosTokenIds);
        Assert.Null(tokenizer.PadTokenId);
        Assert.Equal(1, tokenizer.Encode("Hello")[0]);
        Assert.NotEqual(1, tokenizer.Encode("Hello", addSpecialTokens: false)[0]);
        Assert.Equal(Pieces.Count, tokenizer.VocabSize);
    }

    [Fact]
    public void Add_bos_token_false_in_tokenizer_config_turns_bos_off()
    {
        _dir.WriteJson("tokenizer_config.json", new { add_bos_token = false, bos_token = "<s>", eos_token = "</s>" });
        var tokenizer = _dir.Load();
        Assert.Equal(tokenizer.Encode("Hello", addSpecialTokens: false), tokenizer.Encode("Hello"));
        Assert.Equal(1, tokenizer.BosTokenId);
    }

    [Fact]
    public void Control_tokens_written_in_text_are_single_ids_and_skipped_on_decode()
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode("Hello</s>", addSpecialTokens: false);
        Assert.Equal(2, ids[^1]);
        Assert.Single(ids, 2);
        Assert.Equal("Hello", tokenizer.Decode(ids));
        Assert.Equal("Hello</s>", tokenizer.Decode(ids, skipSpecialTokens: false));
        Assert.Equal("<s> Hello", tokenizer.Decode([1, Id("▁Hello")], skipSpecialTokens: false));
    }

    [Fact]
    public void Added_tokens_from_tokenizer_config_extend_the_vocab_and_are_matched_whole()
    {
        int toolId = Pieces.Count;
        _dir.WriteJson("tokenizer_config.json", new Dictionary<string, object>
        {
            ["added_tokens_decoder"] = new Dictionary<string, object>
            {
                [toolId.ToString()] = new { content = "<tool>", special = true },
            },
        });
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode("Hello<tool>world", addSpecialTokens: false);
        Assert.Single(ids, toolId);
        Assert.Equal(toolId + 1, tokenizer.VocabSize);
        Assert.Equal(toolId, tokenizer.SpecialTokens["<tool>"]);
        Assert.DoesNotContain("<tool>", tokenizer.Decode(ids));
        Assert.Contains("<tool>", tokenizer.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void A_sentencepiece_style_tokenizer_json_is_used_before_tokenizer_model_as_transformers_fast_tokenizer_is()
    {
        // Llama ships both; its tokenizer.json is BPE with Prepend/Replace normalisers and byte_fallback.
        var vocab = Pieces.Select((p, id) => (p.Piece, id)).ToDictionary(x => x.Piece, x => x.id);
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["added_tokens"] = System.Text.Json.Nodes.JsonNode.Parse("""[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]"""),
            ["normalizer"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}"""),
            ["pre_tokenizer"] = null,
            ["post_processor"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}"""),
            ["decoder"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}"""),
            ["model"] = new System.Text.Json.Nodes.JsonObject
            {
                ["type"] = "BPE", ["unk_token"] = "<unk>", ["fuse_unk"] = true, ["byte_fallback"] = true,
                ["vocab"] = System.Text.Json.JsonSerializer.SerializeToNode(vocab),
                ["merges"] = System.Text.Json.JsonSerializer.SerializeToNode(new[] { "l l", "▁ H", "▁H e", "▁He ll", "▁Hell o" }),
            },
        };
        File.WriteAllText(_dir.File("tokenizer.json"), json.ToJsonString());
        var tokenizer = _dir.Load();
        Assert.Equal(ModelTokenizer.SentencePieceBpeKind, tokenizer.Kind);
        Assert.EndsWith("tokenizer.json", tokenizer.TokenizerFile);
        var ids = tokenizer.Encode("Hello 🙂");
        Assert.Equal([1, Id("▁Hello")], ids.Take(2));
        Assert.Equal("Hello 🙂", tokenizer.Decode(ids));
    }

    [Fact]
    public void Streaming_holds_back_fallback_bytes_until_the_character_is_complete()
    {
        var tokenizer = _dir.Load();
        const string text = "Hello 🙂 数据\nworld";
        var ids = tokenizer.Encode(text);
        var stream = tokenizer.CreateStreamingDetokenizer();
        var pieces = ids.Select(stream.Append).ToList();
        string streamed = string.Concat(pieces) + stream.Flush();

        Assert.Equal(tokenizer.Decode(ids), streamed);
        Assert.Equal(text, streamed);
        // 🙂 is four byte pieces: the run is held back whole and comes out with the next piece, so no delta splits it.
        int firstEmojiByte = ids.ToList().IndexOf(3 + 0xF0);
        Assert.Equal(["", "", "", ""], pieces.Skip(firstEmojiByte).Take(4));
        Assert.StartsWith("🙂", pieces[firstEmojiByte + 4]);
    }
}
