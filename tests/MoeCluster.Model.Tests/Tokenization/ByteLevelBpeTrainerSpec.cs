using System.Diagnostics;
using System.Text;
using System.Text.Json;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class ByteLevelBpeTrainerSpec
{
    [Fact]
    public void Vocab_starts_with_the_256_byte_symbols_in_byte_order()
    {
        var (vocab, _) = ByteLevelBpeTokenizerJson.Train(["x"], 256);
        Assert.Equal(256, vocab.Count);
        for (int b = 0; b < 256; b++)
        {
            Assert.Equal(b, vocab[ByteLevelAlphabet.CharFor((byte)b).ToString()]);
        }
        Assert.Equal(32, vocab["Ġ"]);
        Assert.Equal(10, vocab["Ċ"]);
    }

    [Fact]
    public void The_most_frequent_pair_is_merged_first_and_merges_build_on_each_other()
    {
        // Words after the GPT-2 split: "low" x1, " low" x3, " lower" x1, " lowest" x2.
        // (l,o) and (o,w) both occur 7 times; the tie goes to the smaller ids, so (l,o) first. Then (lo,w) 7,
        // (Ġ,low) 6, and (Ġlow,e) 3 beats (e,s) and (s,t) at 2.
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(["low low low low lower lowest lowest"], 256 + 4);
        Assert.Equal([("l", "o"), ("lo", "w"), ("Ġ", "low"), ("Ġlow", "e")], merges);
        Assert.Equal(256, vocab["lo"]);
        Assert.Equal(259, vocab["Ġlowe"]);
    }

    [Fact]
    public void Training_is_deterministic()
    {
        var first = ByteLevelBpeTokenizerJson.Train(TokenizerDirectory.Corpus, 420);
        var second = ByteLevelBpeTokenizerJson.Train(TokenizerDirectory.Corpus.Reverse(), 420);
        Assert.Equal(first.merges, second.merges);
        Assert.Equal(first.vocab.OrderBy(kv => kv.Value), second.vocab.OrderBy(kv => kv.Value));
    }

    [Fact]
    public void Training_stops_at_the_requested_vocab_size()
    {
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(TokenizerDirectory.Corpus, 300);
        Assert.Equal(300, vocab.Count);
        Assert.Equal(vocab.Values.Order(), Enumerable.Range(0, 300));
        Assert.True(merges.Count >= 44);
    }

    [Fact]
    public void Megabytes_of_text_train_in_well_under_a_minute()
    {
        var random = new Random(1234);
        string[] syllables = ["ex", "pert", "rou", "ter", "to", "ken", "ga", "te", "lay", "er", "mo", "del", "clu", "st", "sha", "rd",
            "re", "pli", "ca", "th", "e", "of", "an", "d", "数", "据", "模", "型", "🙂", "20", "24", "at", "ten", "tion", "qu", "ix"];
        // A few thousand distinct words with a skewed (Zipf-like) frequency, as real text has.
        var lexicon = Enumerable.Range(0, 6000)
            .Select(_ => string.Concat(Enumerable.Range(0, 1 + random.Next(4)).Select(_ => syllables[random.Next(syllables.Length)])))
            .ToArray();
        var lines = new List<string>();
        int bytes = 0;
        while (bytes < 3_000_000)
        {
            var line = new StringBuilder();
            for (int i = 0; i < 12; i++)
            {
                int rank = (int)(lexicon.Length * Math.Pow(random.NextDouble(), 3));
                line.Append(lexicon[rank]).Append(random.Next(8) == 0 ? "\n" : random.Next(10) == 0 ? ", " : " ");
            }
            lines.Add(line.ToString());
            bytes += Encoding.UTF8.GetByteCount(line.ToString());
        }

        var clock = Stopwatch.StartNew();
        var (vocab, _) = ByteLevelBpeTokenizerJson.Train(lines, 4000);
        clock.Stop();

        Assert.Equal(4000, vocab.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"training on {bytes} bytes took {clock.Elapsed}");
    }

    [Fact]
    public void Written_tokenizer_json_has_the_hf_layout()
    {
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(TokenizerDirectory.Corpus, 300);
        string path = Path.Combine(Path.GetTempPath(), $"moecluster-tokjson-{Guid.NewGuid():N}.json");
        try
        {
            ByteLevelBpeTokenizerJson.Write(path, vocab, merges, [("<|endoftext|>", 300)]);
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            Assert.Equal("BPE", root.GetProperty("model").GetProperty("type").GetString());
            Assert.Equal("ByteLevel", root.GetProperty("pre_tokenizer").GetProperty("type").GetString());
            Assert.Equal("ByteLevel", root.GetProperty("decoder").GetProperty("type").GetString());
            Assert.Equal(300, root.GetProperty("model").GetProperty("vocab").EnumerateObject().Count());
            Assert.Equal(merges.Count, root.GetProperty("model").GetProperty("merges").GetArrayLength());
            var added = root.GetProperty("added_tokens")[0];
            Assert.Equal(300, added.GetProperty("id").GetInt32());
            Assert.True(added.GetProperty("special").GetBoolean());
            var (left, right) = merges[0];
            Assert.Equal($"{left} {right}", root.GetProperty("model").GetProperty("merges")[0].GetString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Writer_refuses_an_added_token_that_reuses_a_vocab_id()
    {
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(["abc"], 256);
        var ex = Assert.Throws<ArgumentException>(() =>
            ByteLevelBpeTokenizerJson.Write(Path.Combine(Path.GetTempPath(), "never-written.json"), vocab, merges, [("<|x|>", 5)]));
        Assert.Contains("<|x|>", ex.Message);
    }
}
