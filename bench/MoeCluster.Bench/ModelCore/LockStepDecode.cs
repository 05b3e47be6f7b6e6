using System.Diagnostics;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>The model core with nothing around it: every prompt prefilled in one <c>Forward</c> step, then one batched
/// decode step per token, each sequence's next token its greedy argmax (kept on the device, as a serving loop that
/// samples on the host would not). What the served paths (<c>LocalEngine</c>, the cluster) are compared with.</summary>
public static class LockStepDecode
{
    /// <summary>Seconds of the prompt step and of the whole run (prompt step and <paramref name="generate"/> − 1
    /// decode steps); <paramref name="generate"/> tokens per sequence come out.</summary>
    public sealed record Timing(int Sequences, int Generate, double PromptSeconds, double TotalSeconds)
    {
        /// <summary>Tokens after each sequence's first, per second of the decode steps.</summary>
        public double DecodeTokensPerSecond => Sequences * (Generate - 1) / (TotalSeconds - PromptSeconds);
        public double TokensPerSecondWithPrompt => Sequences * Generate / TotalSeconds;
    }

    public static Timing Run(MoeTransformer model, IReadOnlyList<int[]> prompts, int generate)
    {
        using var scope = NewDisposeScope();
        int n = prompts.Count;
        var caches = model.CreateCaches(n, prompts.Max(p => p.Length) + generate + 1);
        try
        {
            long start = Stopwatch.GetTimestamp();
            var layout = new StepLayout(prompts.Select((p, s) => new SequenceSegment(s, 0, p.Length)).ToArray());
            var next = model.ForwardTokens(prompts.SelectMany(p => p).ToArray(), layout, caches).argmax(-1);
            _ = next.data<long>().ToArray();
            double promptSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            for (int g = 1; g < generate; g++)
            {
                var step = new StepLayout(prompts.Select((p, s) => new SequenceSegment(s, p.Length + g - 1, 1)).ToArray());
                using var logits = model.Forward(next, step, caches);
                next.Dispose();
                next = logits.argmax(-1);
            }
            _ = next.data<long>().ToArray();
            return new Timing(n, generate, promptSeconds, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }
}
