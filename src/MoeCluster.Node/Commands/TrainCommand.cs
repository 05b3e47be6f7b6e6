using System.CommandLine;
using MoeCluster.Model.Training;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster train`: train a small Mixtral-layout MoE model on text files and save a Hugging Face checkpoint.
/// Defaults reproduce the shipped models/moe-tiny-fortunes (see its model card for the exact command).</summary>
public static class TrainCommand
{
    static readonly TrainingOptions D = new() { DataFiles = [], OutputDirectory = "" };
    static readonly Option<string[]> Data = new("--data") { Description = "text files (fortune files split at '%' lines, others at blank lines)", Required = true, AllowMultipleArgumentsPerToken = true };
    static readonly Option<string> Output = new("--output") { Description = "checkpoint directory to write", Required = true };
    static readonly Option<int> VocabSize = new("--vocab-size") { DefaultValueFactory = _ => D.VocabSize };
    static readonly Option<int> Hidden = new("--hidden") { DefaultValueFactory = _ => D.Hidden };
    static readonly Option<int> Layers = new("--layers") { DefaultValueFactory = _ => D.Layers };
    static readonly Option<int> Heads = new("--heads") { DefaultValueFactory = _ => D.Heads };
    static readonly Option<int> KvHeads = new("--kv-heads") { DefaultValueFactory = _ => D.KvHeads };
    static readonly Option<int> Experts = new("--experts") { DefaultValueFactory = _ => D.Experts };
    static readonly Option<int> TopK = new("--top-k") { DefaultValueFactory = _ => D.TopK };
    static readonly Option<int> Intermediate = new("--intermediate") { Description = "width of one expert", DefaultValueFactory = _ => D.Intermediate };
    static readonly Option<int> SeqLen = new("--seq-len") { DefaultValueFactory = _ => D.SeqLen };
    static readonly Option<int> BatchSize = new("--batch-size") { DefaultValueFactory = _ => D.BatchSize };
    static readonly Option<int> Steps = new("--steps") { DefaultValueFactory = _ => D.Steps };
    static readonly Option<double> Lr = new("--lr") { DefaultValueFactory = _ => D.LearningRate };
    static readonly Option<int> Warmup = new("--warmup-steps") { DefaultValueFactory = _ => D.WarmupSteps };
    static readonly Option<double> WeightDecay = new("--weight-decay") { DefaultValueFactory = _ => D.WeightDecay };
    static readonly Option<double> ClipNorm = new("--clip-norm") { DefaultValueFactory = _ => D.ClipNorm };
    static readonly Option<double> AuxLoss = new("--aux-loss") { Description = "load-balancing loss coefficient", DefaultValueFactory = _ => D.AuxLossCoefficient };
    static readonly Option<int> HeldOutEvery = new("--held-out-every") { Description = "every n-th document is held out", DefaultValueFactory = _ => D.HeldOutEvery };
    static readonly Option<int> EvalEvery = new("--eval-every") { DefaultValueFactory = _ => D.EvalEvery };
    static readonly Option<int> EvalSequences = new("--eval-sequences") { DefaultValueFactory = _ => D.EvalSequences };
    static readonly Option<int> Seed = new("--seed") { DefaultValueFactory = _ => D.Seed };
    static readonly Option<int> Threads = new("--threads") { Description = "compute threads (1 is best on a busy shared machine)", DefaultValueFactory = _ => D.Threads };
    static readonly Option<bool> Dense = new("--dense") { Description = "train the dense baseline with the same active parameters" };
    static readonly Option<string> SaveDType = new("--save-dtype") { DefaultValueFactory = _ => D.SaveDType };
    static readonly Option<int> LogEvery = new("--log-every") { DefaultValueFactory = _ => D.LogEvery };

    public static Command Create()
    {
        var c = new Command("train", "Train a small Mixtral-layout MoE model on the CPU and save a Hugging Face checkpoint.")
        {
            Data, Output, VocabSize, Hidden, Layers, Heads, KvHeads, Experts, TopK, Intermediate, SeqLen, BatchSize, Steps, Lr, Warmup,
            WeightDecay, ClipNorm, AuxLoss, HeldOutEvery, EvalEvery, EvalSequences, Seed, Threads, Dense, SaveDType, LogEvery,
        };
        c.SetAction(p =>
        {
            var o = new TrainingOptions
            {
                DataFiles = p.GetValue(Data)!, OutputDirectory = p.GetValue(Output)!, VocabSize = p.GetValue(VocabSize), Hidden = p.GetValue(Hidden),
                Layers = p.GetValue(Layers), Heads = p.GetValue(Heads), KvHeads = p.GetValue(KvHeads), Experts = p.GetValue(Experts), TopK = p.GetValue(TopK),
                Intermediate = p.GetValue(Intermediate), SeqLen = p.GetValue(SeqLen), BatchSize = p.GetValue(BatchSize), Steps = p.GetValue(Steps),
                LearningRate = p.GetValue(Lr), WarmupSteps = p.GetValue(Warmup), WeightDecay = p.GetValue(WeightDecay), ClipNorm = p.GetValue(ClipNorm),
                AuxLossCoefficient = p.GetValue(AuxLoss), HeldOutEvery = p.GetValue(HeldOutEvery), EvalEvery = p.GetValue(EvalEvery),
                EvalSequences = p.GetValue(EvalSequences), Seed = p.GetValue(Seed), Threads = p.GetValue(Threads), Dense = p.GetValue(Dense),
                SaveDType = p.GetValue(SaveDType)!, LogEvery = p.GetValue(LogEvery),
            };
            try
            {
                o.Validate();
                var r = TrainingRun.Run(o, Console.Error.WriteLine);
                Console.WriteLine($"saved {r.OutputDirectory}: held-out perplexity {r.HeldOut.Perplexity:0.00} (unigram {r.UnigramPerplexity:0.00}), {r.ActiveParameters:N0} active of {r.TotalParameters:N0} parameters, {r.TrainingTime.TotalMinutes:0.0} min");
                return 0;
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"moecluster train: {e.Message}");
                return 2;
            }
        });
        return c;
    }
}
