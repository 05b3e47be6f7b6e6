using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class TokenizerLoadingSpec : IDisposable
{
    private readonly TokenizerDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Load_returns_null_when_the_directory_has_no_tokenizer_files()
    {
        _dir.WriteJson("config.json", new { eos_token_id = 2 });
        _dir.WriteJson("tokenizer_config.json", new { eos_token = "</s>" });
        Assert.Null(ModelTokenizer.Load(_dir.Path));
    }

    [Fact]
    public void Load_of_a_missing_directory_names_it()
    {
        string missing = _dir.File("no-such-model");
        var ex = Assert.Throws<DirectoryNotFoundException>(() => ModelTokenizer.Load(missing));
        Assert.Contains(missing, ex.Message);
    }

    [Fact]
    public void Corrupt_tokenizer_json_throws_naming_the_file()
    {
        File.WriteAllText(_dir.File("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,");
        var ex = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer.json"), ex.Message);
    }

    [Fact]
    public void Merges_that_use_tokens_missing_from_the_vocab_throw_naming_the_file()
    {
        _dir.WriteTrainedByteLevel();
        _dir.EditTokenizerJson(root => root["model"]!["merges"]!.AsArray().Add("Ġzzz qqq"));
        var ex = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer.json"), ex.Message);
    }

    [Fact]
    public void Corrupt_tokenizer_config_throws_naming_that_file()
    {
        _dir.WriteTrainedByteLevel();
        File.WriteAllText(_dir.File("tokenizer_config.json"), "not json");
        var ex = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer_config.json"), ex.Message);
    }

    [Fact]
    public void Truncated_tokenizer_model_throws_naming_the_file()
    {
        var bytes = SentencePieceModelWriter.Encode(SentencePieceModelWriter.LlamaStylePrefix());
        File.WriteAllBytes(_dir.File("tokenizer.model"), bytes[..(bytes.Length / 2)]);
        var ex = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer.model"), ex.Message);
    }

    [Fact]
    public void Unigram_tokenizer_json_is_refused_naming_the_file_the_type_and_what_is_supported()
    {
        File.WriteAllText(_dir.File("tokenizer.json"), """{"model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0]]}}""");
        var ex = Assert.Throws<NotSupportedException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer.json"), ex.Message);
        Assert.Contains("Unigram", ex.Message);
        Assert.Contains("byte-level", ex.Message);
        Assert.Contains("SentencePiece BPE in tokenizer.model", ex.Message);
    }

    [Fact]
    public void Unigram_sentencepiece_model_is_refused_naming_the_file_and_the_type()
    {
        File.WriteAllBytes(_dir.File("tokenizer.model"), SentencePieceModelWriter.Encode(SentencePieceModelWriter.LlamaStylePrefix(), modelType: 1));
        var ex = Assert.Throws<NotSupportedException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File("tokenizer.model"), ex.Message);
        Assert.Contains("UNIGRAM", ex.Message);
    }

    [Fact]
    public void Eos_ids_are_the_union_of_generation_config_list_tokenizer_config_object_and_config_int()
    {
        var (_, _, endOfText, imStart, imEnd) = _dir.WriteTrainedByteLevel();
        _dir.WriteJson("generation_config.json", new { eos_token_id = new[] { endOfText, imEnd }, pad_token_id = endOfText });
        _dir.WriteJson("tokenizer_config.json", new { eos_token = new { content = TokenizerDirectory.ImEnd, special = true } });
        _dir.WriteJson("config.json", new { eos_token_id = imStart, bos_token_id = endOfText });

        var tokenizer = _dir.Load();
        Assert.Equal([endOfText, imEnd, imStart], tokenizer.EosTokenIds);
        Assert.Equal(endOfText, tokenizer.BosTokenId);
        Assert.Equal(endOfText, tokenizer.PadTokenId);
    }

    [Fact]
    public void Eos_given_as_plain_ints_and_strings_are_read_too()
    {
        var (_, _, endOfText, _, imEnd) = _dir.WriteTrainedByteLevel();
        _dir.WriteJson("generation_config.json", new { eos_token_id = imEnd });
        _dir.WriteJson("tokenizer_config.json", new { eos_token = TokenizerDirectory.EndOfText, pad_token = TokenizerDirectory.EndOfText });

        var tokenizer = _dir.Load();
        Assert.Equal([imEnd, endOfText], tokenizer.EosTokenIds);
        Assert.Equal(endOfText, tokenizer.PadTokenId);
    }

    [Fact]
    public void Chat_template_is_returned_raw_and_the_default_is_picked_from_a_list()
    {
        _dir.WriteTrainedByteLevel();
        const string template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
        _dir.WriteJson("tokenizer_config.json", new { chat_template = template });
        Assert.Equal(template, _dir.Load().ChatTemplate);

        _dir.WriteJson("tokenizer_config.json", new
        {
            chat_template = new[] { new { name = "tool_use", template = "tools" }, new { name = "default", template } },
        });
        Assert.Equal(template, _dir.Load().ChatTemplate);
    }

    [Fact]
    public void Tokenizer_config_naming_a_token_outside_the_vocab_throws()
    {
        _dir.WriteTrainedByteLevel();
        _dir.WriteJson("tokenizer_config.json", new { eos_token = "<|not_a_token|>" });
        var ex = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(_dir.Path));
        Assert.Contains("<|not_a_token|>", ex.Message);
    }

    [Fact]
    public void The_templates_eos_token_is_tokenizer_configs_even_when_generation_config_lists_another_end_first()
    {
        // Llama 3.1 Instruct: generation_config.json lists <|end_of_text|> first, tokenizer_config.json names <|eot_id|>.
        var (_, _, endOfText, _, imEnd) = _dir.WriteTrainedByteLevel();
        _dir.WriteJson("generation_config.json", new { eos_token_id = new[] { endOfText, imEnd } });
        _dir.WriteJson("tokenizer_config.json", new { eos_token = TokenizerDirectory.ImEnd, bos_token = TokenizerDirectory.EndOfText });
        var tokenizer = _dir.Load();
        Assert.Equal(endOfText, tokenizer.EosTokenIds[0]);
        Assert.Equal(TokenizerDirectory.ImEnd, tokenizer.SpecialTokenTexts["eos_token"]);
        Assert.Equal(TokenizerDirectory.EndOfText, tokenizer.SpecialTokenTexts["bos_token"]);
    }

    [Fact]
    public void Chat_template_jinja_replaces_the_config_template_and_additional_templates_are_named()
    {
        _dir.WriteTrainedByteLevel();
        _dir.WriteJson("tokenizer_config.json", new { chat_template = "from config" });
        File.WriteAllText(_dir.File("chat_template.jinja"), "from file");
        Directory.CreateDirectory(_dir.File("additional_chat_templates"));
        File.WriteAllText(Path.Combine(_dir.File("additional_chat_templates"), "tool_use.jinja"), "tools");
        var tokenizer = _dir.Load();
        Assert.Equal("from file", tokenizer.ChatTemplate);
        Assert.Equal("tools", tokenizer.ChatTemplates["tool_use"]);
    }
}
