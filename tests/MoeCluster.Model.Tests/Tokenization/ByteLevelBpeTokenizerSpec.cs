using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class ByteLevelBpeTokenizerSpec : IDisposable
{
    private readonly TokenizerDirectory _dir = new();
    private readonly int _endOfText, _imStart, _imEnd;
    private readonly Dictionary<string, int> _vocab;

    public ByteLevelBpeTokenizerSpec()
    {
        (_vocab, _, _endOfText, _imStart, _imEnd) = _dir.WriteTrainedByteLevel();
    }

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog.")]
    [InlineData("Hello world! unseen words: zebra, quixotic, 0xDEADBEEF")]
    [InlineData("  two leading spaces, trailing spaces   ")]
    [InlineData("line one\nline two\n\n\nafter blank lines\r\nwindows\ttab\t\tdouble tab")]
    [InlineData("def main():\n    return 42\n")]
    [InlineData("数据模型 专家 混合 — em dash, café, naïve")]
    [InlineData("emoji 🙂🚀👩‍👩‍👧 and flags 🇳🇱")]
    public void Decode_of_encode_gives_back_the_text(string text)
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Spaces_and_newlines_become_tokens_instead_of_being_dropped()
    {
        var tokenizer = _dir.Load();
        var spaced = tokenizer.Encode("a b\nc");
        var squashed = tokenizer.Encode("abc");
        Assert.True(spaced.Count > squashed.Count, $"'a b\\nc' gave {spaced.Count} ids, 'abc' gave {squashed.Count}");
        Assert.Contains(_vocab[ByteLevelAlphabet.Encode("\n")], spaced.Concat(tokenizer.Encode("x\ny")));
    }

    [Fact]
    public void Kind_and_vocab_size_count_the_added_tokens()
    {
        var tokenizer = _dir.Load();
        Assert.Equal(ModelTokenizer.ByteLevelBpeKind, tokenizer.Kind);
        Assert.Equal(_vocab.Count + 3, tokenizer.VocabSize);
        Assert.Equal(_imEnd + 1, tokenizer.VocabSize);
    }

    [Fact]
    public void Trained_merges_are_used_so_frequent_words_take_fewer_ids_than_bytes()
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode(" quick brown");
        Assert.True(ids.Count < Encoding.UTF8.GetByteCount(" quick brown") / 2, $"{ids.Count} ids");
        Assert.Equal([_vocab[ByteLevelAlphabet.Encode(" quick")], _vocab[ByteLevelAlphabet.Encode(" brown")]], ids);
    }

    [Fact]
    public void Added_tokens_in_text_encode_to_single_ids_and_decode_skips_or_keeps_them()
    {
        var tokenizer = _dir.Load();
        string chat = $"{TokenizerDirectory.ImStart}user\nHello world{TokenizerDirectory.ImEnd}\n{TokenizerDirectory.EndOfText}";
        var ids = tokenizer.Encode(chat);

        Assert.Equal(_imStart, ids[0]);
        Assert.Single(ids, _imStart);
        Assert.Single(ids, _imEnd);
        Assert.Equal(_endOfText, ids[^1]);
        Assert.Equal(chat, tokenizer.Decode(ids, skipSpecialTokens: false));
        Assert.Equal("user\nHello world\n", tokenizer.Decode(ids, skipSpecialTokens: true));
        Assert.Equal(_imEnd, tokenizer.SpecialTokens[TokenizerDirectory.ImEnd]);
        Assert.True(tokenizer.IsSpecialToken(_imStart));
    }

    [Fact]
    public void Without_tokenizer_config_no_bos_is_added()
    {
        var tokenizer = _dir.Load();
        Assert.Null(tokenizer.BosTokenId);
        Assert.Equal(tokenizer.Encode("Hello", addSpecialTokens: false), tokenizer.Encode("Hello"));
    }

    [Fact]
    public void Add_bos_token_in_tokenizer_config_prepends_bos_only_when_special_tokens_are_asked_for()
    {
        _dir.WriteJson("tokenizer_config.json", new { add_bos_token = true, bos_token = TokenizerDirectory.EndOfText });
        var tokenizer = _dir.Load();
        Assert.Equal(_endOfText, tokenizer.BosTokenId);
        var plain = tokenizer.Encode("Hello", addSpecialTokens: false);
        Assert.Equal([_endOfText, .. plain], tokenizer.Encode("Hello"));
    }

    [Fact]
    public void Post_processor_template_adds_bos_when_tokenizer_config_is_silent()
    {
        // Llama 3 style: TemplateProcessing puts <|begin_of_text|> before every single sequence.
        _dir.EditTokenizerJson(root => root["post_processor"] = JsonNode.Parse("""
            {"type":"TemplateProcessing",
             "single":[{"SpecialToken":{"id":"EOT","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
             "pair":[],
             "special_tokens":{"EOT":{"id":"EOT","ids":[EOT_ID],"tokens":["EOT"]}}}
            """.Replace("EOT_ID", _endOfText.ToString()).Replace("EOT", TokenizerDirectory.EndOfText)));
        var tokenizer = _dir.Load();
        Assert.Equal(_endOfText, tokenizer.Encode("Hi")[0]);
        Assert.Equal(_endOfText, tokenizer.BosTokenId);
        Assert.DoesNotContain(_endOfText, tokenizer.Encode("Hi", addSpecialTokens: false));
    }

    [Fact]
    public void Merges_in_pair_array_form_load_the_same_as_string_form()
    {
        var before = _dir.Load();
        _dir.EditTokenizerJson(root =>
        {
            var model = root["model"]!.AsObject();
            var pairs = new JsonArray();
            foreach (var merge in model["merges"]!.AsArray())
            {
                var parts = merge!.GetValue<string>().Split(' ');
                pairs.Add(new JsonArray(parts[0], parts[1]));
            }
            model["merges"] = pairs;
        });
        var after = _dir.Load();
        const string text = "The quick brown fox 数据模型 🙂\n";
        Assert.Equal(before.Encode(text), after.Encode(text));
        Assert.True(after.Encode(" quick").Count == 1);
    }

    [Fact]
    public void Qwen_style_split_pre_tokenizer_from_the_file_is_applied()
    {
        var gpt2 = _dir.Load();
        Assert.True(gpt2.Encode(" 12345").Count < 5, "the GPT-2 split keeps the digit run whole, so trained merges apply");

        // Qwen2: a Split regex that isolates single digits, then ByteLevel without its own regex.
        _dir.EditTokenizerJson(root => root["pre_tokenizer"] = JsonNode.Parse("""
            {"type":"Sequence","pretokenizers":[
              {"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},
              {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}
            """));
        var qwen = _dir.Load();
        var ids = qwen.Encode("12345");
        Assert.Equal(5, ids.Count);
        Assert.Equal("Total: 12345 items\n\n  ok", qwen.Decode(qwen.Encode("Total: 12345 items\n\n  ok")));
    }

    [Fact]
    public void Nfc_normalizer_composes_decomposed_text_whatever_the_globalization_mode()
    {
        // Qwen2 and Qwen3 ship {"type":"NFC"}; the tests run with InvariantGlobalization, where string.Normalize is a no-op.
        _dir.EditTokenizerJson(root => root["normalizer"] = JsonNode.Parse("""{"type":"Sequence","normalizers":[{"type":"NFC"}]}"""));
        var qwen = _dir.Load();
        Assert.Equal(qwen.Encode("café Å Å"), qwen.Encode("cafe\u0301 A\u030A \u212B"));
        Assert.Equal("café 数据", qwen.Decode(qwen.Encode("cafe\u0301 数据")));
    }

    [Theory]
    [InlineData("""{"type":"Precompiled","precompiled_charsmap":"AAAA"}""", "Precompiled")]
    [InlineData("""{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"BertNormalizer"}]}""", "BertNormalizer")]
    public void A_normalizer_step_the_loader_does_not_know_is_refused_naming_it(string normalizer, string name)
    {
        _dir.EditTokenizerJson(root => root["normalizer"] = JsonNode.Parse(normalizer));
        var ex = Assert.Throws<NotSupportedException>(() => _dir.Load());
        Assert.Contains(_dir.File("tokenizer.json"), ex.Message);
        Assert.Contains($"\"{name}\"", ex.Message);
        Assert.Contains("NFKC", ex.Message); // the supported list
    }

    [Theory]
    [InlineData("""{"type":"BertPreTokenizer"}""", "BertPreTokenizer")]
    [InlineData("""{"type":"Sequence","pretokenizers":[{"type":"UnicodeScripts"},{"type":"ByteLevel"}]}""", "UnicodeScripts")]
    public void A_pre_tokenizer_step_the_loader_does_not_know_is_refused_naming_it(string preTokenizer, string name)
    {
        _dir.EditTokenizerJson(root => root["pre_tokenizer"] = JsonNode.Parse(preTokenizer));
        var ex = Assert.Throws<NotSupportedException>(() => _dir.Load());
        Assert.Contains(_dir.File("tokenizer.json"), ex.Message);
        Assert.Contains($"\"{name}\"", ex.Message);
        Assert.Contains("Metaspace", ex.Message); // the supported list
    }

    [Fact]
    public void Concurrent_encodes_give_the_same_ids_as_sequential_ones()
    {
        var tokenizer = _dir.Load();
        var texts = Enumerable.Range(0, 64).Select(i => $"request {i}: the quick brown fox 数据 🙂 #{i * 7919}\n").ToArray();
        var expected = texts.Select(t => tokenizer.Encode(t)).ToArray();
        var actual = new IReadOnlyList<int>[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => actual[i] = tokenizer.Encode(texts[i]));
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_ignored_by_decode()
    {
        var tokenizer = _dir.Load();
        var ids = tokenizer.Encode("Hello").ToList();
        Assert.Equal("Hello", tokenizer.Decode([.. ids, tokenizer.VocabSize + 7, -1]));
    }
}
