using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Training;

/// <summary><c>moecluster train</c>: text files → tokenizer → packed sequences → AdamW with cosine schedule, clipping
/// and a load-balancing loss → Hugging Face checkpoint, loss.csv and eval.json (held-out perplexity of the saved
/// weights, the unigram baseline and expert load on the same split).</summary>
public static class TrainingRun
{
    public const string HeldOutDocumentsFile = "eval/heldout-documents.txt";

    public static TrainingResult Run(TrainingOptions options, Action<string> log)
    {
        options.Validate();
        if (options.Threads > 0) set_num_threads(options.Threads);
        manual_seed(options.Seed);
        var dir = options.OutputDirectory;
        Directory.CreateDirectory(dir);

        var documents = TextDocuments.Read(options.DataFiles);
        var (trainDocs, heldOutDocs) = TextDocuments.SplitHeldOut(documents, options.HeldOutEvery);
        log($"data: {documents.Count} documents from {options.DataFiles.Count} file(s), {documents.Sum(d => (long)d.Length)} characters; " +
            $"{trainDocs.Count} train, {heldOutDocs.Count} held out (every {options.HeldOutEvery}th)");
        TextDocuments.WriteFortuneFile(Path.Combine(dir, HeldOutDocumentsFile), heldOutDocs);

        var clock = Stopwatch.StartNew();
        int endOfText = TrainingTokenizer.TrainAndWrite(trainDocs, options.VocabSize, dir, Math.Max(1024, options.SeqLen));
        var tokenizer = ModelTokenizer.Load(dir) ?? throw new InvalidOperationException($"{dir}: tokenizer.json was not written");
        var train = new PackedSequences(TrainingTokenizer.Encode(tokenizer, trainDocs), endOfText, options.SeqLen);
        var heldOut = new PackedSequences(TrainingTokenizer.Encode(tokenizer, heldOutDocs), endOfText, options.SeqLen);
        log($"tokenizer: {endOfText + 1} tokens in {clock.Elapsed.TotalSeconds:F1} s; train {train.StreamTokens} tokens ({train.Count} windows of {options.SeqLen}), " +
            $"held out {heldOut.StreamTokens} tokens ({heldOut.Count} windows)");
        if (train.Count < options.BatchSize)
            throw new ArgumentException($"--data gives only {train.Count} training windows of {options.SeqLen} tokens; --batch-size {options.BatchSize} needs at least that many");
        if (heldOut.Count == 0)
            throw new ArgumentException($"--data: the held-out split ({heldOut.StreamTokens} tokens) is shorter than one --seq-len window ({options.SeqLen}); use more data");

        var config = options.ToModelConfig(endOfText);
        using var model = new MoeTransformer(config, ModuleOptions.Cpu32, config.MaxPositionEmbeddings);
        ModuleWeights.InitializeRandom(model, options.Seed);
        var (total, active) = CountParameters(model);
        log($"model: {(options.Dense ? "dense baseline" : "MoE")} {config.NumLayers} layers, D={config.HiddenSize}, {config.NumExperts} experts top-{config.TopK} × {config.ExpertIntermediateSize}; " +
            $"{total:N0} parameters, {active:N0} active per token");

        clock.Restart();
        int steps = Train(model, options, train, heldOut, log, clock);
        var trainingTime = clock.Elapsed;

        TrainedCheckpoint.Save(model, dir, options.StorageType, endOfText);
        log($"saved {dir} ({new FileInfo(Path.Combine(dir, "model.safetensors")).Length / 1024.0 / 1024.0:F2} MiB model.safetensors)");

        // Measure what was shipped: the stored (possibly bfloat16-rounded) weights, read back through the loader.
        using var saved = MoeTransformer.Load(dir, ModuleOptions.Cpu32);
        var full = Perplexity.Evaluate(saved, heldOut);
        var subset = Perplexity.Evaluate(saved, heldOut, options.EvalSequences);
        var unigram = Math.Exp(new UnigramBaseline(train.Stream, config.VocabSize).MeanLoss(heldOut.Targets(heldOut.Count)));
        var result = new TrainingResult(dir, config, steps, (long)steps * options.BatchSize * options.SeqLen, full, subset, unigram, trainingTime)
            { ActiveParameters = active, TotalParameters = total };
        WriteEvalJson(Path.Combine(dir, "eval.json"), options, documents.Count, heldOutDocs.Count, heldOut, result);
        log($"held-out perplexity {full.Perplexity:F3} over {full.Tokens} tokens (first {subset.Tokens / options.SeqLen} windows: {subset.Perplexity:F3}); unigram baseline {unigram:F3}");
        foreach (var load in full.ExpertLoad)
            log($"layer {load.Layer}: tokens per expert % [{string.Join(", ", load.Percent.Select(p => p.ToString("F1")))}], balancedness {load.Balancedness:F3}");
        return result;
    }

    static int Train(MoeTransformer model, TrainingOptions o, PackedSequences train, PackedSequences heldOut, Action<string> log, Stopwatch clock)
    {
        var parameters = model.parameters().ToList();
        foreach (var p in parameters) p.requires_grad = true;
        // Decay matrices only; norm scales stay undecayed, as in GPT-2/nanoGPT recipes.
        var groups = new[]
        {
            new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => p.dim() >= 2), new TorchSharp.Modules.AdamW.Options { weight_decay = o.WeightDecay }),
            new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => p.dim() < 2), new TorchSharp.Modules.AdamW.Options { weight_decay = 0 }),
        };
        using var optimizer = optim.AdamW(groups, lr: o.LearningRate, beta1: 0.9, beta2: 0.95, eps: 1e-8);
        var schedule = new CosineSchedule(o.LearningRate, o.WarmupSteps, o.Steps);
        using var lossLog = new LossLog(Path.Combine(o.OutputDirectory, "loss.csv"));
        var order = new BatchOrder(train.Count, o.BatchSize, o.Seed);
        double smoothed = double.NaN;
        for (int step = 1; step <= o.Steps; step++)
        {
            double lr = schedule.At(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double loss, ce, aux;
            using (var scope = NewDisposeScope())
            {
                var (inputs, targets) = train.Batch(order.Next());
                using var output = TrainingForward.Run(model, inputs);
                var crossEntropy = TrainingForward.CrossEntropy(output.Logits, targets);
                var total = crossEntropy + output.LoadBalancingLoss * o.AuxLossCoefficient;
                optimizer.zero_grad();
                total.backward();
                nn.utils.clip_grad_norm_(parameters, o.ClipNorm);
                optimizer.step();
                (loss, ce, aux) = (total.item<float>(), crossEntropy.item<float>(), output.LoadBalancingLoss.item<float>());
            }
            if (!double.IsFinite(loss)) throw new InvalidOperationException($"training diverged at step {step} (loss {loss}); lower --lr (now {o.LearningRate})");
            smoothed = double.IsNaN(smoothed) ? ce : 0.95 * smoothed + 0.05 * ce;
            PerplexityResult? eval = step % o.EvalEvery == 0 || step == o.Steps ? Perplexity.Evaluate(model, heldOut, o.EvalSequences) : null;
            lossLog.Write(step, lr, loss, ce, aux, eval, clock.Elapsed.TotalSeconds);
            if (step % o.LogEvery == 0 || step == 1 || eval is not null)
            {
                var tokensPerSecond = (double)step * o.BatchSize * o.SeqLen / clock.Elapsed.TotalSeconds;
                log($"step {step}/{o.Steps} lr {lr:E2} loss {ce:F4} (smoothed {smoothed:F4}) aux {aux:F4} {tokensPerSecond:F0} tok/s" +
                    (eval is null ? "" : $" | held-out ppl {eval.Perplexity:F3}"));
            }
        }
        foreach (var p in parameters) p.requires_grad = false;
        return o.Steps;
    }

    /// <summary>Total parameters, and those one token uses (all but the unselected experts).</summary>
    public static (long Total, long Active) CountParameters(MoeTransformer model)
    {
        long total = 0, experts = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            total += p.NumberOfElements;
            if (name.Contains(".experts.")) experts += p.NumberOfElements;
        }
        var c = model.Config;
        long active = total - experts + experts / c.NumExperts * c.TopK;
        return (total, active);
    }

    static void WriteEvalJson(string path, TrainingOptions o, int documents, int heldOutDocuments, PackedSequences heldOut, TrainingResult r)
    {
        static JsonObject Ppl(PerplexityResult p) => new() { ["perplexity"] = p.Perplexity, ["mean_loss"] = p.MeanLoss, ["tokens"] = p.Tokens };
        var json = new JsonObject
        {
            ["held_out_split"] = new JsonObject
            {
                ["rule"] = $"documents are read from the data files in order (fortune entries between '%' lines, otherwise blank-line paragraphs); document i (0-based) is held out when (i + 1) % {o.HeldOutEvery} == 0",
                ["held_out_every"] = o.HeldOutEvery,
                ["documents"] = documents,
                ["held_out_documents"] = heldOutDocuments,
                ["documents_file"] = HeldOutDocumentsFile,
                ["sources"] = new JsonArray(o.DataFiles.Select(f => (JsonNode)new JsonObject { ["file"] = f, ["sha256"] = TextDocuments.Sha256(f) }).ToArray()),
                ["packing"] = "each document's tokens followed by <|endoftext|>, concatenated, cut into windows of sequence_length + 1 tokens starting every sequence_length tokens; the trailing partial window is dropped",
                ["sequence_length"] = o.SeqLen,
                ["windows"] = heldOut.Count,
            },
            ["held_out"] = Ppl(r.HeldOut),
            ["held_out_subset"] = Ppl(r.HeldOutSubset).Also(j => j["windows"] = o.EvalSequences),
            ["unigram_baseline"] = new JsonObject { ["perplexity"] = r.UnigramPerplexity, ["smoothing"] = "add-one over the vocabulary, counts from the training stream" },
            ["expert_load"] = new JsonArray(r.HeldOut.ExpertLoad.Select(l => (JsonNode)new JsonObject
            {
                ["layer"] = l.Layer,
                ["tokens_per_expert"] = new JsonArray(l.TokensPerExpert.Select(n => (JsonNode)n).ToArray()),
                ["percent"] = new JsonArray(l.Percent.Select(p => (JsonNode)Math.Round(p, 2)).ToArray()),
                ["balancedness"] = l.Balancedness,
            }).ToArray()),
            ["training"] = new JsonObject
            {
                ["steps"] = r.Steps,
                ["train_tokens_seen"] = r.TrainTokens,
                ["wall_seconds"] = Math.Round(r.TrainingTime.TotalSeconds, 1),
                ["total_parameters"] = r.TotalParameters,
                ["active_parameters"] = r.ActiveParameters,
                ["options"] = JsonSerializer.SerializeToNode(o),
            },
        };
        TrainingTokenizer.WriteJson(path, json);
    }

    static JsonObject Also(this JsonObject o, Action<JsonObject> change) { change(o); return o; }
}
