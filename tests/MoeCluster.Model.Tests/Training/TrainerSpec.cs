using System.Globalization;
using System.Text.Json.Nodes;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tests.Checkpoints;
using MoeCluster.TestSupport;
using MoeCluster.Model.Tokenization;
using MoeCluster.Model.Training;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Training;

public class TrainerSpec
{
    /// <summary>Documents with learnable structure: counting rhymes whose next word follows from the previous ones.</summary>
    static IEnumerable<string> Rhymes()
    {
        string[] animals = ["cat", "dog", "fox", "owl", "bee", "cow"], verbs = ["sat", "ran", "hid", "sang"];
        var random = new Random(1);
        for (int i = 0; i < 400; i++)
        {
            var a = animals[random.Next(animals.Length)];
            var v = verbs[random.Next(verbs.Length)];
            yield return $"The {a} {v} on the mat.\nThe {a} {v} again, and the {a} was glad.";
        }
    }

    static TrainingOptions TinyRun(string data, string output, int steps) => new()
    {
        DataFiles = [data], OutputDirectory = output, VocabSize = 300, Hidden = 32, Layers = 2, Heads = 4, KvHeads = 2,
        Experts = 4, TopK = 2, Intermediate = 32, SeqLen = 32, BatchSize = 8, Steps = steps, LearningRate = 1e-2,
        WarmupSteps = 5, EvalEvery = 10, EvalSequences = 8, Threads = 0, SaveDType = "float32", HeldOutEvery = 10,
    };

    [Fact]
    public void A_short_run_lowers_the_loss_beats_the_unigram_baseline_and_writes_a_loadable_checkpoint()
    {
        using var dir = new TempDirectory();
        TextDocuments.WriteFortuneFile(dir.File("rhymes.txt"), Rhymes());
        var output = dir.File("model");
        var lines = new List<string>();
        var result = TrainingRun.Run(TinyRun(dir.File("rhymes.txt"), output, steps: 40), lines.Add);

        var rows = File.ReadAllLines(Path.Combine(output, "loss.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(40, rows.Count);
        double Ce(string[] row) => double.Parse(row[3], CultureInfo.InvariantCulture);
        Assert.True(rows.TakeLast(5).Average(Ce) < rows.Take(5).Average(Ce) - 1.0,
            $"training loss went from {rows.Take(5).Average(Ce):F3} to {rows.TakeLast(5).Average(Ce):F3}");
        Assert.True(result.HeldOut.Perplexity < result.UnigramPerplexity / 2,
            $"held-out perplexity {result.HeldOut.Perplexity:F2} vs unigram {result.UnigramPerplexity:F2}");

        using var loaded = MoeTransformer.Load(output, ModuleOptions.Cpu32);
        Assert.Equal(result.Config.ToJson().ToJsonString(), loaded.Config.ToJson().ToJsonString());
        var tokenizer = ModelTokenizer.Load(output)!;
        Assert.Equal([tokenizer.TokenToId(TrainingTokenizer.EndOfText)!.Value], tokenizer.EosTokenIds);
        var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "eval.json")))!;
        Assert.Equal(result.HeldOut.Perplexity, eval["held_out"]!["perplexity"]!.GetValue<double>(), 9);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 0.0)]
    [InlineData(ScalarType.BFloat16, 0.05)]
    public void A_saved_checkpoint_loads_with_the_model_loader_and_gives_the_same_logits(ScalarType storeAs, double tolerance)
    {
        using var dir = new TempDirectory();
        using var model = TinyModels.Random(Architecture.Mixtral);
        TrainedCheckpoint.Save(model, dir.Path, storeAs, endOfTextId: 96);
        using var loaded = MoeTransformer.Load(dir.Path, ModuleOptions.Cpu32);

        using var scope = NewDisposeScope();
        var tokens = randint(0, model.Config.VocabSize, [2, 12], generator: new TorchSharp.torch.Generator(4));
        using var before = TrainingForward.Run(model, tokens);
        using var after = TrainingForward.Run(loaded, tokens);
        var diff = (before.Logits - after.Logits).abs().max().item<float>();
        Assert.True(diff <= tolerance * before.Logits.abs().max().item<float>(), $"max logit difference {diff} after a {storeAs} round trip");
        var generation = JsonNode.Parse(File.ReadAllText(dir.File("generation_config.json")))!;
        Assert.Equal(96, generation["eos_token_id"]!.GetValue<int>());
    }

    [Fact]
    public void Dense_baseline_has_one_expert_with_the_moe_models_active_width()
    {
        var moe = new TrainingOptions { DataFiles = ["x"], OutputDirectory = "y" };
        var dense = moe with { Dense = true };
        var m = moe.ToModelConfig(2047);
        var d = dense.ToModelConfig(2047);
        Assert.Equal((1, 1, m.TopK * m.ExpertIntermediateSize), (d.NumExperts, d.TopK, d.ExpertIntermediateSize));
        using var moeModel = new MoeTransformer(m with { MaxPositionEmbeddings = 128 }, ModuleOptions.Cpu32);
        using var denseModel = new MoeTransformer(d with { MaxPositionEmbeddings = 128 }, ModuleOptions.Cpu32);
        var (_, moeActive) = TrainingRun.CountParameters(moeModel);
        var (denseTotal, denseActive) = TrainingRun.CountParameters(denseModel);
        // Same parameters per token; the router's E·D weights per layer are the only difference.
        Assert.Equal(denseTotal, denseActive);
        Assert.Equal(moeActive - m.NumLayers * (m.NumExperts - 1L) * m.HiddenSize, denseActive);
    }

    [Fact]
    public void Invalid_options_are_rejected_naming_the_flag()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("a.txt"), "text");
        var ok = new TrainingOptions { DataFiles = [dir.File("a.txt")], OutputDirectory = dir.File("out") };
        Assert.Contains("--top-k", Assert.Throws<ArgumentException>(() => (ok with { TopK = 9 }).Validate()).Message);
        Assert.Contains("--kv-heads", Assert.Throws<ArgumentException>(() => (ok with { KvHeads = 3 }).Validate()).Message);
        Assert.Contains("--save-dtype", Assert.Throws<ArgumentException>(() => (ok with { SaveDType = "int8" }).Validate()).Message);
        Assert.Contains("missing.txt", Assert.Throws<FileNotFoundException>(() => (ok with { DataFiles = [dir.File("missing.txt")] }).Validate()).Message);
    }
}
