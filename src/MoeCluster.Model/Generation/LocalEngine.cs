using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Model.Generation;

/// <summary>The model core's own generation loop: one process, continuous batching over a <see cref="BatchScheduler"/>.
/// This is the reference the cluster's output is compared with. Not thread-safe.</summary>
public sealed class LocalEngine : IDisposable
{
    readonly MoeTransformer model;
    readonly KvCache[] caches;
    public BatchScheduler Scheduler { get; }
    /// <summary>Tokens routed to each expert since start, [layer][expert].</summary>
    public long[][] TokensPerExpert { get; }

    public LocalEngine(MoeTransformer model, BatchingOptions options)
    {
        this.model = model;
        Scheduler = new BatchScheduler(options, model.Config.VocabSize);
        caches = model.CreateCaches(options.MaxBatchSize, options.ContextLength);
        TokensPerExpert = Enumerable.Range(0, model.Config.NumLayers).Select(_ => new long[model.Config.NumExperts]).ToArray();
    }

    /// <summary>Runs one step; returns false when there was nothing to do.</summary>
    public bool Step(List<GenerationEvent> events, Action<StepPlan>? onPlan = null)
    {
        var plan = Scheduler.PlanStep(events);
        if (plan is null) return false;
        onPlan?.Invoke(plan);
        using var scope = NewDisposeScope();
        foreach (var c in plan.Copies)
            foreach (var cache in caches) cache.CopyPrefix(c.FromSlot, c.ToSlot, c.Tokens);
        var logits = model.ForwardTokens(plan.Tokens, plan.Layout, caches, TokensPerExpert, plan.LogitRows());
        Scheduler.CompleteStep(plan, logits, events);
        return true;
    }

    /// <summary>Generates every request to completion (continuous batching) and returns their final events by id.</summary>
    public IReadOnlyDictionary<string, SequenceFinished> Run(IEnumerable<GenerationRequest> requests, Action<GenerationEvent>? onEvent = null)
    {
        var pending = new Queue<GenerationRequest>(requests);
        var finished = new Dictionary<string, SequenceFinished>();
        var events = new List<GenerationEvent>();
        while (true)
        {
            while (pending.Count > 0 && Scheduler.Waiting < Scheduler.Options.MaxQueuedRequests)
                if (!Scheduler.TryEnqueue(pending.Peek())) break; else pending.Dequeue();
            events.Clear();
            bool worked = Step(events);
            foreach (var e in events)
            {
                onEvent?.Invoke(e);
                if (e is SequenceFinished f) finished[f.RequestId] = f;
            }
            if (!worked && pending.Count == 0) return finished;
        }
    }

    /// <summary>Loses every KV cache (as a failed attention node would) and lets the scheduler re-prefill.</summary>
    public void DropCaches()
    {
        foreach (var c in caches) { c.Keys.zero_(); c.Values.zero_(); }
        Scheduler.InvalidateAllCaches();
    }

    public void Dispose()
    {
        foreach (var c in caches) c.Dispose();
    }
}
