using System.Text.Json;
using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Node.Tests.Support;

/// <summary>A real, tiny checkpoint written by the test: config.json, model.safetensors (random weights), a trained
/// byte-level BPE tokenizer.json with ChatML special tokens and a tokenizer_config.json carrying a chat template.
/// Loaded back through the production loaders.</summary>
public sealed class TinyServingModel : IDisposable
{
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    /// <summary>Qwen2's chat template (ChatML with a default system prompt), verbatim.</summary>
    public const string QwenChatTemplate =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    static readonly string[] Corpus =
    [
        "The quick brown fox jumps over the lazy dog.",
        "Hello world! Hello there, world. How are you today?",
        "system user assistant You are a helpful assistant.",
        "def main():\n    return 42\n",
        "numbers 12345 2024 2025 one two three four five",
        "Mixture of experts routes every token to its top experts.",
    ];

    public static readonly BatchingOptions Batching = new() { MaxBatchSize = 8, ContextLength = 2048, MaxPrefillTokensPerStep = 256, MaxQueuedRequests = 64 };

    public string Directory { get; }
    public MoeTransformer Model { get; }
    public ModelTokenizer Tokenizer { get; }
    public string Name => Path.GetFileName(Directory);

    public TinyServingModel(string? chatTemplate = QwenChatTemplate, IEnumerable<string>? corpus = null)
    {
        Directory = Path.Combine(Path.GetTempPath(), "moecluster-serving-tests", "tiny-moe-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);

        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(corpus ?? Corpus, 300);
        int next = vocab.Values.Max() + 1;
        ByteLevelBpeTokenizerJson.Write(Path.Combine(Directory, "tokenizer.json"), vocab, merges,
            [("<|endoftext|>", next), (ImStart, next + 1), (ImEnd, next + 2)]);
        var tokenizerConfig = new Dictionary<string, object?> { ["eos_token"] = ImEnd, ["add_bos_token"] = false, ["chat_template"] = chatTemplate };
        File.WriteAllText(Path.Combine(Directory, "tokenizer_config.json"), JsonSerializer.Serialize(tokenizerConfig));

        var config = new ModelConfig
        {
            Architecture = Architecture.Mixtral, VocabSize = next + 3, HiddenSize = 32, NumLayers = 2, NumHeads = 4, NumKvHeads = 2,
            HeadDim = 8, IntermediateSize = 48, ExpertIntermediateSize = 48, NumExperts = 4, TopK = 2, NormTopKProb = true,
            RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 2048, EosTokenIds = [next + 2], TorchDtype = "float32",
        };
        using (var random = new MoeTransformer(config, ModuleOptions.Cpu32))
        {
            // Large weights so routing and attention are far from uniform.
            ModuleWeights.InitializeRandom(random, seed: 11, std: 0.25);
            config.Save(Directory);
            SafetensorsWriter.Write(Path.Combine(Directory, "model.safetensors"), ModuleWeights.Named(random));
        }
        Model = MoeTransformer.Load(Directory, ModuleOptions.Cpu32);
        Tokenizer = ModelTokenizer.Load(Directory) ?? throw new InvalidOperationException("tokenizer did not load");
    }

    /// <summary>What the model core alone generates for a request (the reference the HTTP answers must equal).</summary>
    public IReadOnlyList<int> GenerateLocally(GenerationRequest request)
    {
        using var engine = new LocalEngine(Model, Batching);
        return engine.Run([request])[request.Id].Generated;
    }

    public void Dispose()
    {
        Model.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { /* a leftover temp directory is harmless */ }
    }
}
