using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

/// <summary>A throw-away checkpoint directory holding tokenizer files written by the test itself.</summary>
internal sealed class TokenizerDirectory : IDisposable
{
    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    /// <summary>Small mixed corpus: English, code-ish lines, whitespace runs, CJK and emoji (so some merges span multi-byte characters).</summary>
    public static readonly string[] Corpus =
    [
        "The quick brown fox jumps over the lazy dog.",
        "the the the quick quick brown brown fox fox",
        "Hello world! Hello there, world.\nSecond line\n\n  indented line\twith tab",
        "def main():\n    return 42\n",
        "数据 数据 模型 模型 专家 专家 数据模型",
        "emoji 🙂 🙂 🚀 rocket 🙂",
        "numbers 12345 12345 2024 2025",
    ];

    public TokenizerDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "moecluster-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void WriteJson(string name, object value) =>
        System.IO.File.WriteAllText(File(name), JsonSerializer.Serialize(value));

    /// <summary>Trains on <see cref="Corpus"/> and writes tokenizer.json with the three chat/end tokens added after the vocab.</summary>
    public (Dictionary<string, int> Vocab, List<(string, string)> Merges, int EndOfTextId, int ImStartId, int ImEndId) WriteTrainedByteLevel(int vocabSize = 400)
    {
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(Corpus, vocabSize);
        int next = vocab.Values.Max() + 1;
        var added = new List<(string, int)> { (EndOfText, next), (ImStart, next + 1), (ImEnd, next + 2) };
        ByteLevelBpeTokenizerJson.Write(File("tokenizer.json"), vocab, merges, added);
        return (vocab, merges, next, next + 1, next + 2);
    }

    /// <summary>Rewrites tokenizer.json through a JSON DOM edit (e.g. to switch the merges form or the pre-tokenizer).</summary>
    public void EditTokenizerJson(Action<JsonObject> edit)
    {
        var root = JsonNode.Parse(System.IO.File.ReadAllText(File("tokenizer.json")))!.AsObject();
        edit(root);
        System.IO.File.WriteAllText(File("tokenizer.json"), root.ToJsonString());
    }

    public ModelTokenizer Load() => ModelTokenizer.Load(Path) ?? throw new InvalidOperationException("Load returned null");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}
