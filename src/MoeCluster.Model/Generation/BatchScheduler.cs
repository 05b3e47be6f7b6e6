using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Model.Generation;

/// <summary>Limits of continuous batching: how many sequences run at once (KV-cache slots), how long each may get,
/// how many prompt tokens one step may prefill (chunked prefill keeps decode latency bounded), and the queue bound.</summary>
public sealed record BatchingOptions
{
    public int MaxBatchSize { get; init; } = 32;
    public int ContextLength { get; init; } = 512;
    public int MaxPrefillTokensPerStep { get; init; } = 512;
    public int MaxQueuedRequests { get; init; } = 256;
    /// <summary>Reuse the KV cache of prompt prefixes other requests already computed (<see cref="PrefixCache"/>); on
    /// by default, as vLLM's automatic prefix caching. Greedy output is the same with and without it.</summary>
    public bool PrefixCaching { get; init; } = true;
    /// <summary>Tokens per prefix-cache block (vLLM's default block size, 16).</summary>
    public int PrefixCacheBlockSize { get; init; } = 16;
}

/// <summary>Before a step runs, copy the KV cache of positions [0, <see cref="Tokens"/>) of slot <see cref="FromSlot"/>
/// into slot <see cref="ToSlot"/> in every layer (a cached prefix another running sequence holds).</summary>
public sealed record KvCopy(int FromSlot, int ToSlot, int Tokens);

/// <summary>One planned step: the flat token batch, its layout, the sequence behind each segment, whether each segment
/// samples, and which token positions need logits. Segment i owns <see cref="RowsPerSegment"/>[i] consecutive rows of
/// the step's logits: its last token's (the next-token row), preceded by the rest of its tokens when the prompt is
/// being scored (echo with logprobs).</summary>
public sealed record StepPlan(int[] Tokens, StepLayout Layout, IReadOnlyList<string> SegmentRequests, IReadOnlyList<bool> SamplesAfterStep,
    IReadOnlyList<int> RowsPerSegment)
{
    /// <summary>KV-cache copies to make before the step's own writes, in order (prefix-cache hits on running slots).</summary>
    public IReadOnlyList<KvCopy> Copies { get; init; } = [];

    /// <summary>Index in the flat token batch of every logits row, in row order (what the LM head runs on).</summary>
    public long[] LogitRows()
    {
        var rows = new List<long>();
        long offset = 0;
        for (int i = 0; i < Layout.Segments.Count; i++)
        {
            long end = offset + Layout.Segments[i].Length;
            for (long t = end - RowsPerSegment[i]; t < end; t++) rows.Add(t);
            offset = end;
        }
        return rows.ToArray();
    }
}

/// <summary>Continuous batching: requests wait in a bounded queue ordered by priority (vLLM's meaning: lower first,
/// then arrival), join the running batch at a step boundary when a KV-cache slot is free, and leave when done,
/// freeing the slot. A waiting request that outranks a running one preempts it when no slot is free: the preempted
/// sequence keeps its tokens, goes back to the queue and is re-prefilled when it returns (vLLM's recompute
/// preemption), so a batch job cannot hold the slots interactive requests need. Sampling of every sequence due in a
/// step is one <see cref="BatchSampler"/> call. The same scheduler drives the single-process engine and the cluster
/// gateway, so both produce the same tokens. Not thread-safe: one owner (a loop or an actor) calls it.</summary>
public sealed class BatchScheduler(BatchingOptions options, int vocabSize)
{
    sealed class Sequence(GenerationRequest request, long arrival)
    {
        public GenerationRequest Request { get; } = request;
        public long Arrival { get; } = arrival;
        public int Slot = -1;
        /// <summary>Tokens of this sequence already in the KV cache.</summary>
        public int Prefilled;
        /// <summary>Prompt tokens found in the prefix cache when the sequence was first admitted.</summary>
        public int? CachedPromptTokens;
        /// <summary>The cached prefix this sequence copies from another slot, until a step that made the copy completes.</summary>
        public KvCopy? PendingCopy;
        /// <summary>Prompt tokens scored so far (echo with logprobs): positions [1, PromptScored] have their logprob.</summary>
        public int PromptScored;
        public readonly List<int> Generated = new();
        public readonly Random Random = request.Sampling.Seed is long s ? new Random(unchecked((int)(s ^ (s >> 32)))) : new Random();
        public readonly ITokenConstraint? Constraint = request.Constraint?.Invoke();
        /// <summary>Tokens that must be in the cache before the next decode step: the prompt, plus every generated
        /// token but the last (after a cache loss the sequence is re-prefilled up to here, then decodes on).</summary>
        public int CacheTarget => Request.PromptTokens.Count + Math.Max(0, Generated.Count - 1);
        public bool InPrefill => Prefilled < CacheTarget;
        public bool ScoresPrompt => Request.PromptLogprobs is not null && PromptScored < Request.PromptTokens.Count - 1;
        public int TokenAt(int i) => i < Request.PromptTokens.Count ? Request.PromptTokens[i] : Generated[i - Request.PromptTokens.Count];
        /// <summary>Scheduling order: priority, then arrival.</summary>
        public (int, long) Rank => (Request.Priority, Arrival);
    }

    readonly List<Sequence> waiting = new();
    readonly Dictionary<string, Sequence> running = new();
    readonly HashSet<string> cancelled = new();
    readonly Stack<int> freeSlots = new(Enumerable.Range(0, options.MaxBatchSize).Reverse());
    readonly PrefixCache? prefixes = options.PrefixCaching ? new PrefixCache(options.MaxBatchSize, options.PrefixCacheBlockSize) : null;
    long arrivals;

    public BatchingOptions Options => options;
    public int Waiting => waiting.Count;
    public int Running => running.Count;
    public bool IsIdle => waiting.Count == 0 && running.Count == 0;
    /// <summary>Tokens held in KV caches right now (for the memory gauge).</summary>
    public long CachedTokens => running.Values.Sum(s => (long)s.Prefilled);
    /// <summary>Sequences sent back to the queue for a higher-priority request since start.</summary>
    public long Preemptions { get; private set; }
    /// <summary>Prompt tokens looked up in the prefix cache, and those found, since start (vLLM's prefix_cache_queries
    /// and prefix_cache_hits, in tokens).</summary>
    public long PrefixCacheQueriedTokens { get; private set; }
    public long PrefixCacheHitTokens { get; private set; }

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
        if (r.Logprobs is < 0 or > BatchSampler.MaxTopLogprobs)
            throw new InvalidGenerationRequestException("logprobs", $"logprobs must be in [0, {BatchSampler.MaxTopLogprobs}]");
        if (r.PromptLogprobs is < 0 or > BatchSampler.MaxTopLogprobs)
            throw new InvalidGenerationRequestException("logprobs", $"prompt logprobs must be in [0, {BatchSampler.MaxTopLogprobs}]");
        if (running.ContainsKey(r.Id) || waiting.Any(w => w.Request.Id == r.Id))
            throw new InvalidGenerationRequestException("id", $"request id '{r.Id}' is already in use");
    }

    /// <summary>Queues a request; false when the queue is full (the caller answers "overloaded").</summary>
    public bool TryEnqueue(GenerationRequest request)
    {
        Validate(request);
        if (waiting.Count >= options.MaxQueuedRequests) return false;
        waiting.Add(new Sequence(request, arrivals++));
        return true;
    }

    /// <summary>Cancels a queued or running request; it leaves at the next step boundary with reason Cancelled.</summary>
    public bool Cancel(string requestId)
    {
        if (running.ContainsKey(requestId) || waiting.Any(w => w.Request.Id == requestId)) return cancelled.Add(requestId);
        return false;
    }

    /// <summary>Finishes cancelled requests, admits waiting ones into free slots (preempting outranked running ones
    /// when none is free), and lays out the next step (decode tokens first, then prefill chunks up to the token
    /// budget, both in priority order). Returns null when there is nothing to run.</summary>
    public StepPlan? PlanStep(List<GenerationEvent> events)
    {
        DropCancelled(events);
        Admit();
        if (running.Count == 0) return null;

        var tokens = new List<int>();
        var segments = new List<SequenceSegment>();
        var ids = new List<string>();
        var samples = new List<bool>();
        var rows = new List<int>();
        var ordered = running.Values.OrderBy(s => s.Rank).ToList();
        foreach (var s in ordered.Where(s => !s.InPrefill))
        {
            tokens.Add(s.Generated[^1]);
            segments.Add(new SequenceSegment(s.Slot, s.Request.PromptTokens.Count + s.Generated.Count - 1, 1));
            ids.Add(s.Request.Id);
            samples.Add(true);
            rows.Add(1);
        }
        int budget = options.MaxPrefillTokensPerStep;
        foreach (var s in ordered.Where(s => s.InPrefill))
        {
            if (budget <= 0) break;
            int n = Math.Min(budget, s.CacheTarget - s.Prefilled);
            for (int i = 0; i < n; i++) tokens.Add(s.TokenAt(s.Prefilled + i));
            segments.Add(new SequenceSegment(s.Slot, s.Prefilled, n));
            ids.Add(s.Request.Id);
            // Sample only when this chunk completes the prompt; a re-prefill already knows its next token.
            samples.Add(s.Generated.Count == 0 && s.Prefilled + n == s.CacheTarget);
            rows.Add(s.ScoresPrompt && s.Prefilled + n > s.PromptScored ? n : 1);
            budget -= n;
        }
        var copies = running.Values.Where(s => s.PendingCopy is not null).Select(s => s.PendingCopy!).ToArray();
        return new StepPlan(tokens.ToArray(), new StepLayout(segments), ids, samples, rows) { Copies = copies };
    }

    void Admit()
    {
        waiting.Sort((a, b) => a.Rank.CompareTo(b.Rank));
        int at = 0;
        while (at < waiting.Count)
        {
            var next = waiting[at];
            if (WaitsForGroupPrefill(next)) { at++; continue; }
            if (freeSlots.Count == 0)
            {
                var victim = running.Values.Where(r => r.Rank.CompareTo(next.Rank) > 0 && r.Request.Priority > next.Request.Priority)
                    .OrderByDescending(r => r.Rank).FirstOrDefault();
                if (victim is null) return;
                Preempt(victim);   // it ranks after next, so next keeps its place in the queue
            }
            if (!TryTakeSlot(next)) return;
            waiting.Remove(next);
            running[next.Request.Id] = next;
        }
    }

    /// <summary>A choice of an n &gt; 1 request waits while another choice of its group prefills the shared prompt, so it
    /// copies those blocks instead of computing them too (only with prefix caching, and not for a choice that scores its
    /// prompt, which computes it whole anyway).</summary>
    bool WaitsForGroupPrefill(Sequence s) =>
        prefixes is not null && s.Request.PrefillGroup is { } group && s.Generated.Count == 0 && s.Request.PromptLogprobs is null
        && running.Values.Any(r => r.Request.PrefillGroup == group && r.Generated.Count == 0);

    /// <summary>Gives the sequence a free slot and its cached prefix: a free slot holding the longest prefix is taken as
    /// it is; a longer prefix held by a running sequence is copied into the least recently used free slot. At least one
    /// token is left to compute when the sequence still needs its first logits (vLLM does the same). Requests that
    /// score their prompt (echo with logprobs) compute it whole. False when every free slot is the source of a copy
    /// not yet made.</summary>
    bool TryTakeSlot(Sequence s)
    {
        s.Prefilled = 0;
        s.PendingCopy = null;
        if (prefixes is null)
        {
            s.Slot = freeSlots.Pop();
            return true;
        }
        var pinned = running.Values.Where(r => r.PendingCopy is not null).Select(r => r.PendingCopy!.FromSlot).ToHashSet();
        var free = freeSlots.Where(f => !pinned.Contains(f)).ToList();
        if (free.Count == 0) return false;
        var runningSlots = running.Values.Where(r => r.PendingCopy is null).Select(r => r.Slot).ToHashSet();
        int wanted = s.Generated.Count == 0 ? s.CacheTarget - 1 : s.CacheTarget;
        var (blocks, holders) = s.Request.PromptLogprobs is null
            ? prefixes.Match(s.TokenAt, wanted, slot => free.Contains(slot) || runningSlots.Contains(slot))
            : (0, []);
        int cached = Math.Min(blocks * prefixes.BlockSize, wanted);
        int slot;
        if (holders.FirstOrDefault(free.Contains, -1) is var own and >= 0) slot = own;
        else
        {
            slot = prefixes.Evictable(free);
            if (cached > 0) s.PendingCopy = new KvCopy(holders.First(), slot, cached);
        }
        TakeFree(slot);
        prefixes.Truncate(slot, s.PendingCopy is null ? cached / prefixes.BlockSize : 0);
        prefixes.Touch(slot);
        if (s.PendingCopy is not null) prefixes.Touch(s.PendingCopy.FromSlot);
        s.Slot = slot;
        s.Prefilled = cached;
        if (s.CachedPromptTokens is null)
        {
            s.CachedPromptTokens = Math.Min(cached, s.Request.PromptTokens.Count);
            PrefixCacheQueriedTokens += s.Request.PromptTokens.Count;
            PrefixCacheHitTokens += s.CachedPromptTokens.Value;
        }
        return true;
    }

    void TakeFree(int slot)
    {
        var rest = freeSlots.Where(f => f != slot).Reverse().ToArray();
        freeSlots.Clear();
        foreach (var f in rest) freeSlots.Push(f);
    }

    void Preempt(Sequence s)
    {
        running.Remove(s.Request.Id);
        freeSlots.Push(s.Slot);
        if (s.PendingCopy is not null) prefixes?.Truncate(s.Slot, 0);
        s.PendingCopy = null;
        s.Slot = -1;
        s.Prefilled = 0;
        waiting.Add(s);
        waiting.Sort((a, b) => a.Rank.CompareTo(b.Rank));
        Preemptions++;
    }

    /// <summary>Applies a step's logits ([rows, V] float32, laid out by <see cref="StepPlan.RowsPerSegment"/>): scores
    /// prompt tokens where asked, samples every due sequence in one batch, emits tokens, finishes sequences on a stop
    /// token, a complete constrained output or max_tokens, and frees their slots.</summary>
    public void CompleteStep(StepPlan plan, Tensor logits, List<GenerationEvent> events)
    {
        using var scope = NewDisposeScope();
        ConfirmCopies(plan);
        int v = (int)logits.shape[1];
        var due = new List<(Sequence Seq, SamplingRow Row)>();
        var scored = new List<(Sequence Seq, int First, int Rows)>();
        var scoreRows = new List<int>();
        var scoreTargets = new List<int>();
        int row = 0;
        for (int i = 0; i < plan.SegmentRequests.Count; i++)
        {
            int first = row, count = plan.RowsPerSegment[i];
            row += count;
            if (!running.TryGetValue(plan.SegmentRequests[i], out var s)) continue;
            var segment = plan.Layout.Segments[i];
            s.Prefilled = Math.Max(s.Prefilled, segment.End);
            prefixes?.Extend(s.Slot, s.TokenAt, s.Prefilled);
            if (count > 1)
            {
                // Row j scores the prompt token after position segment.Start + j.
                int from = Math.Max(s.PromptScored, segment.Start), to = Math.Min(segment.End, s.Request.PromptTokens.Count - 1);
                for (int pos = from; pos < to; pos++)
                {
                    scoreRows.Add(first + pos - segment.Start);
                    scoreTargets.Add(s.Request.PromptTokens[pos + 1]);
                }
                if (to > from) scored.Add((s, from + 1, to - from));
                s.PromptScored = Math.Max(s.PromptScored, to);
            }
            if (!plan.SamplesAfterStep[i]) continue;
            int last = row - 1;
            if (s.Generated.Count == 0 && s.Request.ReturnPromptLogits)
                events.Add(new PromptLogits(s.Request.Id, logits[last].to(ScalarType.Float32).cpu().data<float>().ToArray()));
            bool[]? allowed = null;
            if (s.Constraint is { } c)
            {
                allowed = new bool[v];
                c.FillAllowed(allowed, s.Request.MaxTokens - s.Generated.Count);
            }
            due.Add((s, new SamplingRow(last, s.Request.Sampling, s.Request.PromptTokens, s.Generated, s.Request.StopTokenIds, s.Random,
                s.Request.Logprobs, allowed)));
        }

        if (scored.Count > 0)
        {
            var logprobs = BatchSampler.Score(logits, scoreRows, scoreTargets, scored.Max(x => x.Seq.Request.PromptLogprobs ?? 0));
            int at = 0;
            foreach (var (s, first, count) in scored)
            {
                int top = s.Request.PromptLogprobs ?? 0;
                events.Add(new PromptTokensScored(s.Request.Id, first, logprobs[at..(at + count)].Select(l => l with { Top = l.Top.Take(top).ToArray() }).ToArray()));
                at += count;
            }
        }

        var sampled = BatchSampler.Sample(logits, due.Select(d => d.Row).ToList());
        for (int i = 0; i < due.Count; i++)
        {
            var s = due[i].Seq;
            int token = sampled[i].Token;
            if (s.Request.StopTokenIds.Contains(token)) { Finish(s, FinishReason.Stop, events); continue; }
            s.Generated.Add(token);
            s.Constraint?.Accept(token);
            events.Add(new TokenGenerated(s.Request.Id, token, s.Generated.Count - 1, sampled[i].Logprob));
            if (s.Constraint?.IsComplete == true) Finish(s, FinishReason.Stop, events);
            else if (s.Generated.Count >= s.Request.MaxTokens) Finish(s, FinishReason.Length, events);
        }
    }

    /// <summary>The copies of a completed step were made: their targets hold the prefix now (and can be reused in turn).</summary>
    void ConfirmCopies(StepPlan plan)
    {
        foreach (var c in plan.Copies)
            if (running.Values.FirstOrDefault(s => s.PendingCopy == c) is { } s)
            {
                s.PendingCopy = null;
                prefixes?.Extend(s.Slot, s.TokenAt, s.Prefilled);
            }
    }

    /// <summary>The KV cache of these sequences was lost (an attention actor restarted or moved): they are re-prefilled
    /// from their prompt and generated tokens at the next step and then continue, producing the same tokens. Prefixes
    /// cached in these slots are forgotten, and a sequence that was to copy its prefix from one of them computes it.</summary>
    public int InvalidateCache(IEnumerable<int> slots)
    {
        var lost = slots.ToHashSet();
        int n = 0;
        foreach (var s in running.Values.Where(s => lost.Contains(s.Slot) || s.PendingCopy is { } c && lost.Contains(c.FromSlot)))
        {
            s.Prefilled = 0;
            s.PendingCopy = null;
            // Its prompt is computed whole after all: usage must not claim a reuse that did not happen.
            if (s.Generated.Count == 0) s.CachedPromptTokens = 0;
            lost.Add(s.Slot);
            n++;
        }
        foreach (var slot in lost.Where(s => s >= 0 && s < options.MaxBatchSize)) prefixes?.Truncate(slot, 0);
        return n;
    }

    /// <summary>Every running sequence must be re-prefilled and no cached prefix is left (all KV caches lost).</summary>
    public void InvalidateAllCaches()
    {
        InvalidateCache(running.Values.Select(s => s.Slot));
        prefixes?.Clear();
    }

    /// <summary>Forgets every cached prefix of the free slots too (an attention entity that restarted lost them all).</summary>
    public void ForgetCachedPrefixes() => prefixes?.Clear();

    /// <summary>Ends every running request of a failed step with an error (they are not retried here).</summary>
    public void FailRunning(string error, List<GenerationEvent> events)
    {
        foreach (var s in running.Values.ToList()) Finish(s, FinishReason.Error, events, error);
    }

    /// <summary>Takes every running request out (a gateway that stops, or whose drain grace ran out, will not finish
    /// them), as <see cref="ReleaseWaiting"/> does the queue: returns the ids of those nothing was reported for yet (still
    /// in prefill), for the caller to refuse so that they are resent elsewhere; the others end with
    /// <paramref name="error"/>.</summary>
    public IReadOnlyList<string> ReleaseRunning(string error, List<GenerationEvent> events)
    {
        var unreported = new List<string>();
        foreach (var s in running.Values.ToList())
        {
            if (!Unreported(s)) { Finish(s, FinishReason.Error, events, error); continue; }
            Remove(s);
            unreported.Add(s.Request.Id);
        }
        return unreported;
    }

    /// <summary>No event of this sequence has gone out: no token, no prompt score (a client could resend it unseen).</summary>
    static bool Unreported(Sequence s) => s.Generated.Count == 0 && s.PromptScored == 0;

    /// <summary>Takes every queued request out (a gateway that drains or stops will never run them). Returns the ids of
    /// those nothing was reported for yet, for the caller to refuse so that their clients send them to another gateway,
    /// as they would a request refused at the door; those preempted after they streamed tokens or prompt scores end
    /// with <paramref name="error"/>, since a client cannot resend half a stream.</summary>
    public IReadOnlyList<string> ReleaseWaiting(string error, List<GenerationEvent> events)
    {
        var unreported = new List<string>();
        foreach (var w in waiting)
        {
            cancelled.Remove(w.Request.Id);
            if (Unreported(w)) unreported.Add(w.Request.Id);
            else events.Add(new SequenceFinished(w.Request.Id, FinishReason.Error, w.Request.PromptTokens.Count, w.Generated.ToArray(), error));
        }
        waiting.Clear();
        return unreported;
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
            var queued = waiting.FirstOrDefault(w => w.Request.Id == id);
            if (queued is null) continue;
            waiting.Remove(queued);
            events.Add(new SequenceFinished(id, FinishReason.Cancelled, queued.Request.PromptTokens.Count, queued.Generated.ToArray()));
        }
        cancelled.Clear();
    }

    void Finish(Sequence s, FinishReason reason, List<GenerationEvent> events, string? error = null)
    {
        Remove(s);
        events.Add(new SequenceFinished(s.Request.Id, reason, s.Request.PromptTokens.Count, s.Generated.ToArray(), error)
        {
            CachedPromptTokens = s.CachedPromptTokens ?? 0,
        });
    }

    /// <summary>A running sequence leaves: its slot is free again and a cancellation of it is moot.</summary>
    void Remove(Sequence s)
    {
        running.Remove(s.Request.Id);
        cancelled.Remove(s.Request.Id);
        freeSlots.Push(s.Slot);
    }
}
