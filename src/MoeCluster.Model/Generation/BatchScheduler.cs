using MoeCluster.Model.Layers;

namespace MoeCluster.Model.Generation;

/// <summary>Limits of continuous batching: how many sequences run at once (KV-cache slots), how long each may get,
/// how many prompt tokens one step may prefill (chunked prefill keeps decode latency bounded), and the queue bound.</summary>
public sealed record BatchingOptions
{
    public int MaxBatchSize { get; init; } = 32;
    public int ContextLength { get; init; } = 512;
    public int MaxPrefillTokensPerStep { get; init; } = 512;
    public int MaxQueuedRequests { get; init; } = 256;
}

/// <summary>One planned step: the flat token batch, its layout, and the sequence behind each segment.</summary>
public sealed record StepPlan(int[] Tokens, StepLayout Layout, IReadOnlyList<string> SegmentRequests, IReadOnlyList<bool> SamplesAfterStep);

/// <summary>Continuous batching without any tensor or actor: requests wait in a bounded queue, join the running batch
/// at a step boundary when a KV-cache slot is free, and leave when done, freeing the slot. The same scheduler drives
/// the single-process engine and the cluster gateway, so both produce the same tokens. Not thread-safe: one owner
/// (a loop or an actor) calls it.</summary>
public sealed class BatchScheduler(BatchingOptions options, int vocabSize)
{
    sealed class Sequence(GenerationRequest request, int slot)
    {
        public GenerationRequest Request { get; } = request;
        public int Slot { get; } = slot;
        /// <summary>Tokens of this sequence already in the KV cache.</summary>
        public int Prefilled;
        public readonly List<int> Generated = new();
        public readonly Sampler Sampler = new(request.Sampling);
        /// <summary>Tokens that must be in the cache before the next decode step: the prompt, plus every generated
        /// token but the last (after a cache loss the sequence is re-prefilled up to here, then decodes on).</summary>
        public int CacheTarget => Request.PromptTokens.Count + Math.Max(0, Generated.Count - 1);
        public bool InPrefill => Prefilled < CacheTarget;
        public int TokenAt(int i) => i < Request.PromptTokens.Count ? Request.PromptTokens[i] : Generated[i - Request.PromptTokens.Count];
    }

    readonly Queue<GenerationRequest> waiting = new();
    readonly Dictionary<string, Sequence> running = new();
    readonly HashSet<string> cancelled = new();
    readonly Stack<int> freeSlots = new(Enumerable.Range(0, options.MaxBatchSize).Reverse());

    public BatchingOptions Options => options;
    public int Waiting => waiting.Count;
    public int Running => running.Count;
    public bool IsIdle => waiting.Count == 0 && running.Count == 0;
    /// <summary>Tokens held in KV caches right now (for the memory gauge).</summary>
    public long CachedTokens => running.Values.Sum(s => (long)s.Prefilled);

    /// <summary>Checks a request can ever run here; throws <see cref="InvalidGenerationRequestException"/> naming the field.</summary>
    public void Validate(GenerationRequest r)
    {
        if (r.PromptTokens.Count == 0) throw new InvalidGenerationRequestException("prompt", "prompt must contain at least one token");
        foreach (int t in r.PromptTokens)
            if ((uint)t >= (uint)vocabSize) throw new InvalidGenerationRequestException("prompt", $"token id {t} is outside the vocabulary (ids 0 to {vocabSize - 1})");
        if (r.MaxTokens <= 0) throw new InvalidGenerationRequestException("max_tokens", $"max_tokens must be > 0, got {r.MaxTokens}");
        if (r.PromptTokens.Count > options.ContextLength)
            throw new InvalidGenerationRequestException("prompt", $"prompt has {r.PromptTokens.Count} tokens; the context holds {options.ContextLength}");
        if (r.PromptTokens.Count + r.MaxTokens > options.ContextLength)
            throw new InvalidGenerationRequestException("max_tokens",
                $"prompt ({r.PromptTokens.Count} tokens) + max_tokens ({r.MaxTokens}) exceeds the context length {options.ContextLength}");
        try { r.Sampling.Validate(); }
        catch (ArgumentOutOfRangeException e) { throw new InvalidGenerationRequestException(e.ParamName ?? "sampling", e.Message); }
        if (r.Sampling.LogitBias.Keys.FirstOrDefault(t => t >= vocabSize, -1) is var bias and >= 0)
            throw new InvalidGenerationRequestException("logit_bias", $"logit_bias names token id {bias}, outside the vocabulary (ids 0 to {vocabSize - 1})");
        if (running.ContainsKey(r.Id) || waiting.Any(w => w.Id == r.Id))
            throw new InvalidGenerationRequestException("id", $"request id '{r.Id}' is already in use");
    }

    /// <summary>Queues a request; false when the queue is full (the caller answers "overloaded").</summary>
    public bool TryEnqueue(GenerationRequest request)
    {
        Validate(request);
        if (waiting.Count >= options.MaxQueuedRequests) return false;
        waiting.Enqueue(request);
        return true;
    }

    /// <summary>Cancels a queued or running request; it leaves at the next step boundary with reason Cancelled.</summary>
    public bool Cancel(string requestId)
    {
        if (running.ContainsKey(requestId) || waiting.Any(w => w.Id == requestId)) return cancelled.Add(requestId);
        return false;
    }

    /// <summary>Finishes cancelled requests, admits waiting ones into free slots, and lays out the next step
    /// (decode tokens first, then prefill chunks up to the token budget). Returns null when there is nothing to run.</summary>
    public StepPlan? PlanStep(List<GenerationEvent> events)
    {
        DropCancelled(events);
        while (waiting.Count > 0 && freeSlots.Count > 0)
        {
            var r = waiting.Dequeue();
            running[r.Id] = new Sequence(r, freeSlots.Pop());
        }
        if (running.Count == 0) return null;

        var tokens = new List<int>();
        var segments = new List<SequenceSegment>();
        var ids = new List<string>();
        var samples = new List<bool>();
        foreach (var s in running.Values.Where(s => !s.InPrefill))
        {
            tokens.Add(s.Generated[^1]);
            segments.Add(new SequenceSegment(s.Slot, s.Request.PromptTokens.Count + s.Generated.Count - 1, 1));
            ids.Add(s.Request.Id);
            samples.Add(true);
        }
        int budget = options.MaxPrefillTokensPerStep;
        foreach (var s in running.Values.Where(s => s.InPrefill))
        {
            if (budget <= 0) break;
            int n = Math.Min(budget, s.CacheTarget - s.Prefilled);
            for (int i = 0; i < n; i++) tokens.Add(s.TokenAt(s.Prefilled + i));
            segments.Add(new SequenceSegment(s.Slot, s.Prefilled, n));
            ids.Add(s.Request.Id);
            // Sample only when this chunk completes the prompt; a re-prefill already knows its next token.
            samples.Add(s.Generated.Count == 0 && s.Prefilled + n == s.CacheTarget);
            budget -= n;
        }
        return new StepPlan(tokens.ToArray(), new StepLayout(segments), ids, samples);
    }

    /// <summary>Applies a step's logits ([segments, V] float32, row i for segment i): samples where due, emits tokens,
    /// finishes sequences on a stop token or max_tokens, and frees their slots.</summary>
    public void CompleteStep(StepPlan plan, ReadOnlySpan<float> logits, int vocab, List<GenerationEvent> events)
    {
        for (int i = 0; i < plan.SegmentRequests.Count; i++)
        {
            if (!running.TryGetValue(plan.SegmentRequests[i], out var s)) continue;
            var segment = plan.Layout.Segments[i];
            s.Prefilled = Math.Max(s.Prefilled, segment.End);
            if (!plan.SamplesAfterStep[i]) continue;
            var row = logits.Slice(i * vocab, vocab);
            if (s.Generated.Count == 0 && s.Request.ReturnPromptLogits) events.Add(new PromptLogits(s.Request.Id, row.ToArray()));
            int token = s.Sampler.Next(row);
            if (s.Request.StopTokenIds.Contains(token)) { Finish(s, FinishReason.Stop, events); continue; }
            s.Generated.Add(token);
            events.Add(new TokenGenerated(s.Request.Id, token, s.Generated.Count - 1));
            if (s.Generated.Count >= s.Request.MaxTokens) Finish(s, FinishReason.Length, events);
        }
    }

    /// <summary>The KV cache of these sequences was lost (an attention actor restarted or moved): they are re-prefilled
    /// from their prompt and generated tokens at the next step and then continue, producing the same tokens.</summary>
    public int InvalidateCache(IEnumerable<int> slots)
    {
        var lost = slots.ToHashSet();
        int n = 0;
        foreach (var s in running.Values.Where(s => lost.Contains(s.Slot))) { s.Prefilled = 0; n++; }
        return n;
    }

    /// <summary>Every running sequence must be re-prefilled (all KV caches lost).</summary>
    public void InvalidateAllCaches() => InvalidateCache(running.Values.Select(s => s.Slot));

    /// <summary>Ends every running request of a failed step with an error (they are not retried here).</summary>
    public void FailRunning(string error, List<GenerationEvent> events)
    {
        foreach (var s in running.Values.ToList()) Finish(s, FinishReason.Error, events, error);
    }

    /// <summary>Ends every queued request with an error (a draining gateway will never run them).</summary>
    public void FailWaiting(string error, List<GenerationEvent> events)
    {
        while (waiting.Count > 0)
        {
            var r = waiting.Dequeue();
            cancelled.Remove(r.Id);
            events.Add(new SequenceFinished(r.Id, FinishReason.Error, r.PromptTokens.Count, [], error));
        }
    }

    /// <summary>Ends these running requests with an error (a step that keeps failing on their tokens); the rest go on.</summary>
    public void Fail(IEnumerable<string> requestIds, string error, List<GenerationEvent> events)
    {
        foreach (var id in requestIds)
            if (running.TryGetValue(id, out var s)) Finish(s, FinishReason.Error, events, error);
    }

    void DropCancelled(List<GenerationEvent> events)
    {
        if (cancelled.Count == 0) return;
        foreach (var id in cancelled)
        {
            if (running.TryGetValue(id, out var s)) { Finish(s, FinishReason.Cancelled, events); continue; }
            var queued = waiting.FirstOrDefault(w => w.Id == id);
            if (queued is null) continue;
            var rest = waiting.Where(w => w.Id != id).ToList();
            waiting.Clear();
            foreach (var w in rest) waiting.Enqueue(w);
            events.Add(new SequenceFinished(id, FinishReason.Cancelled, queued.PromptTokens.Count, []));
        }
        cancelled.Clear();
    }

    void Finish(Sequence s, FinishReason reason, List<GenerationEvent> events, string? error = null)
    {
        running.Remove(s.Request.Id);
        cancelled.Remove(s.Request.Id);
        freeSlots.Push(s.Slot);
        events.Add(new SequenceFinished(s.Request.Id, reason, s.Request.PromptTokens.Count, s.Generated.ToArray(), error));
    }
}
