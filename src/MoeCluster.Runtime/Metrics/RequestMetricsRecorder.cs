using System.Diagnostics;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Metrics;

/// <summary>Turns one engine's request events into the request-level series (TTFT, inter-token latency, end-to-end
/// latency, queue time, token counters, finish reasons, queue and batch gauges). Used by whatever runs a
/// <see cref="BatchScheduler"/>: the cluster gateway and the single-process engine. Not thread-safe: one owner.</summary>
public sealed class RequestMetricsRecorder(long kvBytesPerToken)
{
    sealed class Timing(long arrived) { public long Arrived = arrived; public long? Started, LastToken; }

    readonly Dictionary<string, Timing> requests = new();
    long prefixQueried, prefixHits;

    public void Arrived(string requestId) => requests[requestId] = new Timing(Stopwatch.GetTimestamp());

    /// <summary>The request left without an answer of its own (refused after it was accepted): no latency is recorded.</summary>
    public void Forget(string requestId) => requests.Remove(requestId);

    /// <summary>The request's first step (it left the queue).</summary>
    public void Scheduled(IEnumerable<string> requestIds)
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var id in requestIds)
            if (requests.TryGetValue(id, out var t) && t.Started is null)
            {
                t.Started = now;
                MoeMetrics.QueueTime.Observe(Stopwatch.GetElapsedTime(t.Arrived, now).TotalSeconds);
            }
    }

    public void Observe(GenerationEvent e)
    {
        if (!requests.TryGetValue(e.RequestId, out var t)) return;
        long now = Stopwatch.GetTimestamp();
        switch (e)
        {
            case TokenGenerated:
                MoeMetrics.GenerationTokens.Inc();
                if (t.LastToken is null) MoeMetrics.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(t.Arrived, now).TotalSeconds);
                else MoeMetrics.InterTokenLatency.Observe(Stopwatch.GetElapsedTime(t.LastToken.Value, now).TotalSeconds);
                t.LastToken = now;
                break;
            case SequenceFinished f:
                requests.Remove(e.RequestId);
                MoeMetrics.PromptTokens.Inc(f.PromptTokens);
                MoeMetrics.RequestsFinished.WithLabels(f.Reason.ToString().ToLowerInvariant()).Inc();
                MoeMetrics.RequestLatency.Observe(Stopwatch.GetElapsedTime(t.Arrived, now).TotalSeconds);
                break;
        }
    }

    public void Step(StepPlan plan)
    {
        Scheduled(plan.SegmentRequests);
        MoeMetrics.StepTokens.Observe(plan.Tokens.Length);
        MoeMetrics.StepSequences.Observe(plan.Layout.Segments.Count);
    }

    public void Gauges(BatchScheduler scheduler)
    {
        MoeMetrics.RequestsWaiting.Set(scheduler.Waiting);
        MoeMetrics.RequestsRunning.Set(scheduler.Running);
        MoeMetrics.KvCacheBytes.Set(scheduler.CachedTokens * kvBytesPerToken);
        // The scheduler counts since its start; the process-wide counters advance by what is new.
        MoeMetrics.PrefixCacheQueries.Inc(scheduler.PrefixCacheQueriedTokens - prefixQueried);
        MoeMetrics.PrefixCacheHits.Inc(scheduler.PrefixCacheHitTokens - prefixHits);
        prefixQueried = scheduler.PrefixCacheQueriedTokens;
        prefixHits = scheduler.PrefixCacheHitTokens;
    }
}
