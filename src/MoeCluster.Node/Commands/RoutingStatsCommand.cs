using System.CommandLine;
using System.Globalization;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Model.Training;
using MoeCluster.Placement;
using MoeCluster.Runtime.Routing;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster routing-stats`: the routing statistics a gateway keeps (entropy, load, co-activation within a
/// layer and to the next, fluctuation), computed offline from text files; its JSON is the co-activation placement's
/// routing profile (<c>serve --placement coactivation --routing-profile FILE</c>).</summary>
public static class RoutingStatsCommand
{
    static readonly Option<string?> Model = new("--model") { Description = "checkpoint directory with a tokenizer (default: the built-in model)" };
    static readonly Option<string[]> Data = new("--data") { Description = "text files: fortune files split at '%' lines, others at blank lines; each document is one sequence", Required = true, AllowMultipleArgumentsPerToken = true };
    static readonly Option<string?> Output = new("--output") { Description = "write the statistics as JSON to this file (the routing profile)" };
    static readonly Option<int> MaxTokens = new("--max-tokens") { Description = "tokens kept of each document", DefaultValueFactory = _ => 128 };
    static readonly Option<int?> Documents = new("--documents") { Description = "use only the first N documents" };
    static readonly Option<int> Skip = new("--skip") { Description = "skip the first N documents (profile on one part of a file, measure on another)", DefaultValueFactory = _ => 0 };
    static readonly Option<int> Threads = new("--threads") { Description = "TorchSharp compute threads (0 = libtorch's choice)", DefaultValueFactory = _ => 0 };

    public static Command Create()
    {
        var c = new Command("routing-stats", "Routing statistics of a model on text files: entropy, load, co-activation, fluctuation.")
        {
            Model, Data, Output, MaxTokens, Documents, Skip, Threads,
        };
        c.SetAction(p =>
        {
            try { return Run(p); }
            catch (Exception e) when (e is ArgumentException or IOException or ModelConfigException or MoeCluster.Model.Checkpoints.CheckpointException)
            {
                Console.Error.WriteLine($"moecluster routing-stats: {e.Message}");
                return 2;
            }
        });
        return c;
    }

    static int Run(ParseResult p)
    {
        var dir = p.GetValue(Model) ?? DefaultModel.Directory();
        var files = p.GetValue(Data)!;
        foreach (var f in files) if (!File.Exists(f)) throw new ArgumentException($"--data: {f} does not exist");
        if (p.GetValue(MaxTokens) < 1) throw new ArgumentException("--max-tokens must be at least 1");
        if (p.GetValue(Threads) > 0) TorchSharp.torch.set_num_threads(p.GetValue(Threads));
        var tokenizer = ModelTokenizer.Load(dir) ?? throw new ArgumentException($"{dir} has no tokenizer (tokenizer.json or tokenizer.model); routing-stats reads text");
        var documents = TextDocuments.Read(files).Skip(Math.Max(0, p.GetValue(Skip))).Take(p.GetValue(Documents) ?? int.MaxValue).ToList();
        if (documents.Count == 0) throw new ArgumentException($"--data: no documents in {string.Join(", ", files)} (after --skip/--documents)");
        using var model = MoeTransformer.Load(dir, ModuleOptions.Cpu32, p.GetValue(MaxTokens));
        if (!model.Config.MoeLayers.Any()) throw new ArgumentException($"{dir} has no MoE layers: there is no routing to count");
        var sequences = documents.Select(d => (IReadOnlyList<int>)tokenizer.Encode(d).Take(p.GetValue(MaxTokens)).ToArray()).ToList();
        var source = $"{string.Join(", ", files.Select(Path.GetFileName))}: {documents.Count} documents from #{p.GetValue(Skip)}, ≤ {p.GetValue(MaxTokens)} tokens each";
        var snapshot = RoutingProfiler.Profile(model, sequences, source: source,
            progress: (done, all) => { if (done == all || done % 64 < 8) Console.Error.Write($"\r{done}/{all} documents"); });
        Console.Error.WriteLine();
        Print(snapshot);
        if (p.GetValue(Output) is string output)
        {
            File.WriteAllText(output, snapshot.ToJson() + "\n");
            Console.WriteLine($"wrote {output}");
        }
        return 0;
    }

    static void Print(RoutingSnapshot s)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{s.Tokens} tokens, {s.Experts} experts per layer, top-{s.TopK}");
        Console.WriteLine("layer  entropy/lnE  balancedness  fluctuation  most co-activated pairs (share of the layer's tokens)");
        foreach (var l in s.Layers)
        {
            var pairs = string.Join("  ", l.TopPairs(3).Select(x => string.Create(inv, $"{x.A}+{x.B} {100.0 * x.Tokens / Math.Max(1, l.Tokens):0.0}%")));
            Console.WriteLine(string.Create(inv, $"{l.Layer,5}  {l.NormalisedEntropy,11:0.000}  {l.Balancedness,12:0.000}  {l.Fluctuation,11:0.000}  {pairs}"));
        }
    }
}
