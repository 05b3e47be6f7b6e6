using System.Diagnostics;
using System.Text;

namespace MoeCluster.Node.Tests;

/// <summary>A steady stream of greedy requests: <c>clients</c> concurrent loops, each sending POST /v1/generate for
/// prompts from a fixed set, one after another, until stopped. Records when each request completed, what it got,
/// and every failure, so a test can check "every request completed with the single-process tokens" and draw a
/// per-second throughput timeline around an event.</summary>
public sealed class ClusterLoad
{
    public const int MaxTokens = 8;

    /// <summary>Twelve prompts of 2 to 9 tokens (vocabulary 97), so requests differ in length and routing.</summary>
    public static readonly IReadOnlyList<int[]> Prompts = Enumerable.Range(0, 12)
        .Select(i => Enumerable.Range(0, 2 + i % 8).Select(k => 2 + (i * 13 + k * 7) % 90).ToArray()).ToArray();

    public sealed record Completion(double AtSeconds, double LatencySeconds, int Prompt, IReadOnlyList<int> Tokens);
    public sealed record Failure(double AtSeconds, int Prompt, string Error);

    readonly ClusterOfProcesses cluster;
    readonly Stopwatch clock = Stopwatch.StartNew();
    readonly List<Completion> completions = new();
    readonly List<Failure> failures = new();
    readonly CancellationTokenSource stop = new();
    Task? running;

    public ClusterLoad(ClusterOfProcesses cluster) => this.cluster = cluster;

    /// <summary>Seconds since the load started.</summary>
    public double Now => clock.Elapsed.TotalSeconds;

    public IReadOnlyList<Completion> Completions { get { lock (completions) return completions.ToList(); } }
    public IReadOnlyList<Failure> Failures { get { lock (failures) return failures.ToList(); } }
    public int Completed { get { lock (completions) return completions.Count; } }

    public ClusterLoad Start(int clients)
    {
        running = Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => ClientAsync(c))));
        return this;
    }

    async Task ClientAsync(int client)
    {
        for (int i = client; !stop.IsCancellationRequested; i += 5)
        {
            int prompt = i % Prompts.Count;
            double started = Now;
            try
            {
                var tokens = await cluster.GenerateAsync(Prompts[prompt], MaxTokens);
                lock (completions) completions.Add(new Completion(Now, Now - started, prompt, tokens));
            }
            catch (Exception e)
            {
                lock (failures) failures.Add(new Failure(Now, prompt, $"{e.GetType().Name}: {e.Message}"));
            }
        }
    }

    /// <summary>Stops sending new requests and waits for those in flight to finish (each is accepted: it must complete).</summary>
    public async Task StopAsync()
    {
        stop.Cancel();
        if (running is not null) await running;
    }

    /// <summary>Waits until <paramref name="count"/> more requests have completed (or the deadline passes).</summary>
    public async Task WaitForCompletionsAsync(int count, TimeSpan timeout)
    {
        int target = Completed + count;
        await MoeCluster.TestSupport.Poll.UntilAsync(() => Completed >= target, timeout, $"{count} more requests completed");
    }

    /// <summary>Completions per whole second since the load started.</summary>
    public int[] Timeline()
    {
        var all = Completions;
        var buckets = new int[(int)Math.Ceiling(Math.Max(Now, all.Count == 0 ? 0 : all.Max(c => c.AtSeconds))) + 1];
        foreach (var c in all) buckets[(int)c.AtSeconds]++;
        return buckets;
    }

    /// <summary>Mean completions per second in [from, to).</summary>
    public double Rate(double from, double to) => Completions.Count(c => c.AtSeconds >= from && c.AtSeconds < to) / (to - from);

    /// <summary>The first whole second at or after <paramref name="from"/> whose completions reach
    /// <paramref name="fraction"/> of <paramref name="rate"/>; null if none has yet.</summary>
    public int? FirstSecondAtRate(double from, double rate, double fraction)
    {
        var t = Timeline();
        for (int s = (int)Math.Floor(from); s < t.Length - 1; s++)   // the last bucket is still filling
            if (s >= from && t[s] >= fraction * rate) return s;
        return null;
    }

    /// <summary>"t+0: 12 | t+1: 0 | …" relative to <paramref name="origin"/> seconds.</summary>
    public string DescribeTimeline(double origin)
    {
        var t = Timeline();
        var sb = new StringBuilder();
        for (int s = 0; s < t.Length; s++) sb.Append($"{s - (int)Math.Floor(origin):+0;-0}s:{t[s]} ");
        return sb.ToString().TrimEnd();
    }

    /// <summary>Every failure and every answer that differs from the reference, as readable lines (empty = all good).</summary>
    public List<string> Problems(ClusterReference reference)
    {
        var problems = Failures.Select(f => $"request for prompt {f.Prompt} failed at {f.AtSeconds:0.0}s: {f.Error}").ToList();
        foreach (var c in Completions)
        {
            var expected = reference.Tokens(Prompts[c.Prompt], MaxTokens);
            if (!expected.SequenceEqual(c.Tokens))
                problems.Add($"prompt {c.Prompt} at {c.AtSeconds:0.0}s got [{string.Join(",", c.Tokens)}], the single process gives [{string.Join(",", expected)}]");
        }
        return problems;
    }
}
