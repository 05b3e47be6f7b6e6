using MoeCluster.Model.Tokenization;
using Xunit.Abstractions;

namespace MoeCluster.Model.Tests.Tokenization;

/// <summary>
/// The real tokenizer.json files of Qwen3 (151k, byte-level), Llama 3 (128k, byte-level), DeepSeek-V3 (128k,
/// byte-level, CJK and digit splits) and Llama 2 (32k,
/// SentencePiece-style BPE with byte fallback) give exactly HF tokenizers' ids on the generated corpus and exactly its
/// text when decoding random ids.
/// </summary>
public sealed class RealTokenizerSpec(ITestOutputHelper output)
{
    [Theory]
    [InlineData("qwen3", ModelTokenizer.ByteLevelBpeKind)]
    [InlineData("llama3", ModelTokenizer.ByteLevelBpeKind)]
    [InlineData("deepseek_v3", ModelTokenizer.ByteLevelBpeKind)]
    [InlineData("llama2", ModelTokenizer.SentencePieceBpeKind)]
    public void Every_corpus_string_encodes_to_the_ids_hf_tokenizers_gives(string name, string kind)
    {
        var tokenizer = ModelTokenizer.Load(ReferenceData.TokenizerDirectory(name))!;
        Assert.Equal(kind, tokenizer.Kind);
        var corpus = ReferenceData.Corpus;
        var expected = ReferenceData.Ids(name);
        Assert.True(corpus.Count >= 10_000, $"corpus has {corpus.Count} strings");
        Assert.Equal(corpus.Count, expected.Count);

        // transformers' LlamaTokenizerFast rebuilds the post-processor from tokenizer_config.json's add_bos_token and
        // add_eos_token (DeepSeek-V3 sets add_bos_token; its tokenizer.json adds nothing), which the tokenizers library
        // alone does not read: then BOS/EOS around the plain ids is what transformers gives.
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ReferenceData.TokenizerDirectory(name), "tokenizer_config.json")))!;
        bool? addBos = config["add_bos_token"]?.GetValue<bool>(), addEos = config["add_eos_token"]?.GetValue<bool>();
        int[] WithSpecial(int i) => addBos is null && addEos is null ? expected[i].WithSpecial
            : [.. addBos == true ? [tokenizer.BosTokenId!.Value] : Array.Empty<int>(), .. expected[i].Plain, .. addEos == true ? [tokenizer.EosTokenIds[0]] : Array.Empty<int>()];

        int plainMatches = 0, specialMatches = 0;
        var failures = new List<string>();
        for (int i = 0; i < corpus.Count; i++)
        {
            var plain = tokenizer.Encode(corpus[i], addSpecialTokens: false);
            var special = tokenizer.Encode(corpus[i], addSpecialTokens: true);
            bool plainOk = plain.SequenceEqual(expected[i].Plain), specialOk = special.SequenceEqual(WithSpecial(i));
            plainMatches += plainOk ? 1 : 0;
            specialMatches += specialOk ? 1 : 0;
            if ((!plainOk || !specialOk) && failures.Count < 5)
            {
                failures.Add($"#{i} {Escape(corpus[i])}\n  hf:  {string.Join(",", expected[i].Plain)}\n  ours: {string.Join(",", plain)}");
            }
        }
        output.WriteLine($"{name}: {plainMatches}/{corpus.Count} match without special tokens, {specialMatches}/{corpus.Count} with");
        Assert.True(failures.Count == 0, $"{name}: {corpus.Count - plainMatches} strings differ; first:\n{string.Join("\n", failures)}");
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    [InlineData("deepseek_v3")]
    [InlineData("llama2")]
    public void Random_ids_decode_to_the_text_hf_tokenizers_gives_and_streaming_agrees(string name)
    {
        var tokenizer = ModelTokenizer.Load(ReferenceData.TokenizerDirectory(name))!;
        var failures = new List<string>();
        var cases = ReferenceData.Decodes(name);
        foreach (var c in cases)
        {
            string text = tokenizer.Decode(c.Ids, skipSpecialTokens: false);
            string skipped = tokenizer.Decode(c.Ids, skipSpecialTokens: true);
            var stream = tokenizer.CreateStreamingDetokenizer();
            string streamed = string.Concat(c.Ids.Select(stream.Append)) + stream.Flush();
            if ((text != c.Text || skipped != c.TextSkip || streamed != skipped) && failures.Count < 5)
            {
                failures.Add($"[{string.Join(",", c.Ids)}]\n  hf:  {Escape(c.Text)} / {Escape(c.TextSkip)}\n  ours: {Escape(text)} / {Escape(skipped)} / streamed {Escape(streamed)}");
            }
        }
        output.WriteLine($"{name}: {cases.Count} decodes checked");
        Assert.True(failures.Count == 0, $"{name}: decodes differ; first:\n{string.Join("\n", failures)}");
    }

    internal static string Escape(string text) =>
        string.Concat(text.Take(200).Select(c => c < 0x20 || c is >= '\u007F' and <= '\u00A0' || char.IsSurrogate(c) && false ? $"\\u{(int)c:X4}" : c.ToString()));
}
