using System.Diagnostics;
using System.Text;
using MoeCluster.Bench.Measurement;
using MoeCluster.Bench.ModelCore;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;

namespace MoeCluster.Bench.Priority;

/// <summary>Time to first token of interactive requests while a batch job fills the KV-cache slots: alone, beside a job
/// at the job-line priority (preempted for them), and beside a job at the same priority (first come, first served, what
/// the scheduler did before priorities). One engine, one thread, the same requests in every scenario; a scaled-down
/// bench-small so the whole run takes about a minute on two cores.</summary>
public static class PriorityBenchmark
{
    const int Slots = 8, JobLines = 48, JobPrompt = 96, JobTokens = 48, Interactive = 8, InteractivePrompt = 32, InteractiveTokens = 8;

    public static ModelConfig Config { get; } = BenchSmall.Config with { NumLayers = 4, HiddenSize = 256, HeadDim = 32, IntermediateSize = 512, ExpertIntermediateSize = 512, VocabSize = 8000 };

    public sealed record Scenario(string Name, double MedianTtftMs, double P90TtftMs, double MaxTtftMs, long Preemptions, double JobSeconds);

    public static IReadOnlyList<Scenario> Run()
    {
        using var model = new MoeTransformer(Config, ModuleOptions.Cpu32);
        ModuleWeights.InitializeRandom(model, seed: 3, std: 0.05);
        var batching = new BatchingOptions { MaxBatchSize = Slots, ContextLength = 256, MaxPrefillTokensPerStep = 256, MaxQueuedRequests = 512 };
        Measure(model, batching, job: false, jobPriority: 0);   // warm-up
        return
        [
            Measure(model, batching, job: false, jobPriority: 0) with { Name = "no job running" },
            Measure(model, batching, job: true, jobPriority: 100) with { Name = "job at priority 100 (job lines' default)" },
            Measure(model, batching, job: true, jobPriority: 0) with { Name = "job at priority 0 (no priorities: first come, first served)" },
        ];
    }

    static Scenario Measure(MoeTransformer model, BatchingOptions batching, bool job, int jobPriority)
    {
        using var engine = new LocalEngine(model, batching);
        var random = new Random(17);
        int[] Prompt(int n) => Enumerable.Range(0, n).Select(_ => random.Next(Config.VocabSize)).ToArray();
        var clock = Stopwatch.StartNew();
        if (job)
            for (int i = 0; i < JobLines; i++)
                engine.Scheduler.TryEnqueue(new GenerationRequest($"job-{i}", Prompt(JobPrompt), JobTokens) { Priority = jobPriority });
        var events = new List<GenerationEvent>();
        var arrived = new Dictionary<string, double>();
        var ttft = new List<double>();
        double jobDone = 0;
        int next = 0, finishedJob = 0, step = 0;
        while (ttft.Count < Interactive || (job && finishedJob < JobLines))
        {
            // An interactive request arrives every 6 steps, once the job has filled the slots.
            if (next < Interactive && step >= 4 && step % 6 == 0)
            {
                var r = new GenerationRequest($"chat-{next++}", Prompt(InteractivePrompt), InteractiveTokens);
                engine.Scheduler.TryEnqueue(r);
                arrived[r.Id] = clock.Elapsed.TotalMilliseconds;
            }
            events.Clear();
            if (!engine.Step(events) && next >= Interactive && !job) break;
            step++;
            foreach (var e in events)
            {
                if (e is TokenGenerated { Index: 0 } t && arrived.Remove(t.RequestId, out var at)) ttft.Add(clock.Elapsed.TotalMilliseconds - at);
                if (e is SequenceFinished f && f.RequestId.StartsWith("job-") && ++finishedJob == JobLines) jobDone = clock.Elapsed.TotalSeconds;
            }
        }
        ttft.Sort();
        return new Scenario("", ttft[ttft.Count / 2], ttft[(int)(ttft.Count * 0.9)], ttft[^1], engine.Scheduler.Preemptions, jobDone);
    }

    public static string Markdown(IReadOnlyList<Scenario> results, MachineInfo machine, DateTime started)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Measured {started:yyyy-MM-dd HH:mm} UTC on {machine.CpuModel}, {machine.Cores} cores, load {machine.LoadAverage} (shared machine).");
        sb.AppendLine($"Model: {BenchSmall.Describe(Config)}. {Slots} KV-cache slots; the job: {JobLines} lines of {JobPrompt} prompt + {JobTokens} generated tokens, " +
            $"all queued at once; {Interactive} interactive requests ({InteractivePrompt} + {InteractiveTokens} tokens) arrive every 6 steps once the job holds every slot.");
        sb.AppendLine();
        sb.AppendLine("| scenario | TTFT median (ms) | p90 (ms) | max (ms) | preemptions | job done after (s) |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
            sb.AppendLine($"| {r.Name} | {r.MedianTtftMs:0} | {r.P90TtftMs:0} | {r.MaxTtftMs:0} | {r.Preemptions} | {(r.JobSeconds > 0 ? r.JobSeconds.ToString("0.0") : "–")} |");
        return sb.ToString();
    }
}
