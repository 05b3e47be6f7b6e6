using System.Text.Encodings.Web;
using System.Text.Json;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Saves (and trains) byte-level BPE tokenizers as HF <c>tokenizer.json</c>: a BPE model with the ByteLevel
/// pre-tokenizer and decoder, readable by HF <c>tokenizers</c> and by <see cref="ModelTokenizer.Load"/>.
/// </summary>
public static class ByteLevelBpeTokenizerJson
{
    /// <summary>
    /// Writes a tokenizer.json. <paramref name="vocab"/> holds tokens in the byte alphabet
    /// (<see cref="ByteLevelAlphabet"/>); <paramref name="addedTokens"/> are written as special added tokens and
    /// must not reuse the id of a different vocabulary entry.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string, string)> merges,
        IReadOnlyList<(string content, int id)> addedTokens)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(merges);
        ArgumentNullException.ThrowIfNull(addedTokens);
        var tokenById = new Dictionary<int, string>();
        foreach (var (token, id) in vocab)
        {
            if (!tokenById.TryAdd(id, token))
            {
                throw new ArgumentException($"vocab gives id {id} to both \"{tokenById[id]}\" and \"{token}\".", nameof(vocab));
            }
        }
        foreach (var (content, id) in addedTokens)
        {
            if (tokenById.TryGetValue(id, out var existing) && existing != content)
            {
                throw new ArgumentException($"added token \"{content}\" has id {id}, which vocab gives to \"{existing}\".", nameof(addedTokens));
            }
        }
        foreach (var (left, right) in merges)
        {
            if (left.Contains(' ') || right.Contains(' '))
            {
                throw new ArgumentException($"merge (\"{left}\", \"{right}\") holds a raw space; byte-level tokens spell space as 'Ġ'.", nameof(merges));
            }
        }

        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }
        using var stream = File.Create(path);
        // Relaxed escaping keeps 'Ġ' and friends readable in the file; both forms are valid JSON.
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

        json.WriteStartObject();
        json.WriteString("version", "1.0");
        json.WriteNull("truncation");
        json.WriteNull("padding");
        json.WriteStartArray("added_tokens");
        foreach (var (content, id) in addedTokens.OrderBy(t => t.id))
        {
            json.WriteStartObject();
            json.WriteNumber("id", id);
            json.WriteString("content", content);
            json.WriteBoolean("single_word", false);
            json.WriteBoolean("lstrip", false);
            json.WriteBoolean("rstrip", false);
            json.WriteBoolean("normalized", false);
            json.WriteBoolean("special", true);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteNull("normalizer");
        WriteByteLevel(json, "pre_tokenizer", addPrefixSpace: false);
        json.WriteNull("post_processor");
        WriteByteLevel(json, "decoder", addPrefixSpace: true);

        json.WriteStartObject("model");
        json.WriteString("type", "BPE");
        json.WriteNull("dropout");
        json.WriteNull("unk_token");
        json.WriteNull("continuing_subword_prefix");
        json.WriteNull("end_of_word_suffix");
        json.WriteBoolean("fuse_unk", false);
        json.WriteBoolean("byte_fallback", false);
        json.WriteStartObject("vocab");
        foreach (var (id, token) in tokenById.OrderBy(kv => kv.Key))
        {
            json.WriteNumber(token, id);
        }
        json.WriteEndObject();
        // The "a b" form: every tokenizers version reads it, and byte-level tokens never hold a raw space.
        json.WriteStartArray("merges");
        foreach (var (left, right) in merges)
        {
            json.WriteStringValue($"{left} {right}");
        }
        json.WriteEndArray();
        json.WriteEndObject();

        json.WriteEndObject();
    }

    private static void WriteByteLevel(Utf8JsonWriter json, string name, bool addPrefixSpace)
    {
        json.WriteStartObject(name);
        json.WriteString("type", "ByteLevel");
        json.WriteBoolean("add_prefix_space", addPrefixSpace);
        json.WriteBoolean("trim_offsets", true);
        json.WriteBoolean("use_regex", true);
        json.WriteEndObject();
    }

    /// <summary>
    /// Trains byte-level BPE on <paramref name="corpus"/>: the 256 byte symbols (ids 0..255 in byte order), then merges
    /// of the most frequent adjacent pair within GPT-2 pre-tokenised words until the vocabulary has
    /// <paramref name="vocabSize"/> entries or no pair is left. Ties go to the smaller pair of ids, so the result is
    /// deterministic.
    /// </summary>
    public static (Dictionary<string, int> vocab, List<(string, string)> merges) Train(IEnumerable<string> corpus, int vocabSize)
        => ByteLevelBpeTrainer.Train(corpus, vocabSize);
}
