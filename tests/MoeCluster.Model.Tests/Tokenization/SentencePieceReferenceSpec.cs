using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Model.Tests.Tokenization;

/// <summary>
/// SentencePiece BPE (tokenizer.model) gives exactly the SentencePiece library's ids on the generated corpus (10,000+
/// strings, runs of up to 3,001 of one character among them): for models the library trains here (Llama-style: byte
/// fallback, whitespace kept, a user-defined piece; trainer-default style: extra whitespace removed, unknown ids) and
/// for the 32k Llama 2 vocabulary (the SentencePiece BPE family Mistral and Mixtral use) written as a tokenizer.model.
/// </summary>
public sealed class SentencePieceReferenceSpec(ITestOutputHelper output) : IDisposable
{
    private static readonly string Script = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Tokenization", "SentencePieceReference.py"));
    private readonly TokenizerDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string, string> TrainedModels => new()
    {
        { "llama-style", """{"vocab_size": 2000, "byte_fallback": true, "remove_extra_whitespaces": false, "user_defined_symbols": ["[USER]"]}""" },
        { "trainer-default-style", """{"vocab_size": 1500, "byte_fallback": false, "remove_extra_whitespaces": true}""" },
    };

    [Theory]
    [MemberData(nameof(TrainedModels))]
    public void A_model_the_library_trained_encodes_every_corpus_string_as_the_library_does(string name, string options)
    {
        string model = _dir.File("tokenizer.model");
        PythonReference.Run(Script, options + "\n" + CorpusLines(), "train", model);
        AssertSameAsLibrary(name, model);
    }

    [Fact]
    public void The_32k_llama_2_vocabulary_as_a_tokenizer_model_encodes_every_corpus_string_as_the_library_does()
    {
        string model = _dir.File("tokenizer.model");
        File.WriteAllBytes(model, SentencePieceModelWriter.Encode(PiecesOf(ReferenceData.TokenizerDirectory("llama2")), removeExtraWhitespaces: false));
        AssertSameAsLibrary("llama2-32k", model);
    }

    private void AssertSameAsLibrary(string name, string modelPath)
    {
        var corpus = ReferenceData.Corpus;
        var reference = PythonReference.Run(Script, CorpusLines(), "encode", modelPath)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonNode.Parse(line)!).ToList();
        Assert.Equal(corpus.Count, reference.Count);

        var file = SentencePieceModelFile.Read(modelPath);
        var encoder = new SentencePieceBpeEncoder(file, modelPath);
        var tokenizer = ModelTokenizer.Load(_dir.Path)!;
        int same = 0, sameText = 0;
        var failures = new List<string>();
        for (int i = 0; i < corpus.Count; i++)
        {
            var expected = reference[i]!["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToList();
            var ids = encoder.Encode(corpus[i]);
            if (ids.SequenceEqual(expected))
            {
                same++;
            }
            else if (failures.Count < 5)
            {
                failures.Add($"#{i} {RealTokenizerSpec.Escape(corpus[i])}\n  sp:   {string.Join(",", expected)}\n  ours: {string.Join(",", ids)}");
            }
            if (file.ByteFallback && tokenizer.Decode(expected) == reference[i]!["text"]!.GetValue<string>())
            {
                sameText++;
            }
        }
        output.WriteLine($"{name}: {same}/{corpus.Count} id sequences equal the library's; decode equal on {sameText}");
        Assert.True(failures.Count == 0, $"{name}: {corpus.Count - same} strings differ; first:\n{string.Join("\n", failures)}");
        if (file.ByteFallback)
        {
            Assert.Equal(corpus.Count, sameText);
        }
    }

    private static string CorpusLines() => string.Join("\n", ReferenceData.Corpus.Select(t => JsonSerializer.Serialize(t))) + "\n";

    /// <summary>
    /// A tokenizer.json's SentencePiece-style vocabulary as tokenizer.model pieces: ids kept, &lt;0xNN&gt; as byte pieces,
    /// the special added tokens as control (unk as unknown), and normal pieces scored by id, the order a SentencePiece
    /// BPE trainer gives them (and the order HF's converter reads its merges in).
    /// </summary>
    private static List<SentencePiece> PiecesOf(string directory)
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "tokenizer.json")))!;
        var special = root["added_tokens"]!.AsArray().ToDictionary(t => t!["content"]!.GetValue<string>(), t => t!["special"]!.GetValue<bool>());
        var vocab = root["model"]!["vocab"]!.AsObject().OrderBy(p => p.Value!.GetValue<int>()).ToList();
        var pieces = new List<SentencePiece>();
        foreach (var (piece, idNode) in vocab)
        {
            int id = idNode!.GetValue<int>();
            Assert.Equal(pieces.Count, id);
            var type = piece == "<unk>" ? SentencePieceType.Unknown
                : special.GetValueOrDefault(piece) ? SentencePieceType.Control
                : piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) ? SentencePieceType.Byte
                : SentencePieceType.Normal;
            pieces.Add(new SentencePiece(piece, type == SentencePieceType.Normal ? -id : 0, type));
        }
        return pieces;
    }
}
