using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>
/// The experts of one node that are in memory when the node holds more experts than it keeps resident (SE-MoE's and
/// Pre-gated MoE's offloading): at most <c>capacity</c> are loaded, the least recently used that nobody is computing
/// with is released when another must come in, and the others stay in the checkpoint on disk. An expert is loaded on
/// demand (the computation waits, like a page fault) or ahead of time by <see cref="Prefetch"/>, which the look-ahead
/// (the next layer's gate applied one layer early) calls while the current layer computes.
/// </summary>
/// <remarks>Which expert to release: the one whose layer comes back last. A model is read layer by layer, round and
/// round, so after layer L the next use of layer ℓ's experts is (ℓ − L) mod layers layers away; releasing the
/// farthest is Belady's optimal choice for that cycle, where least-recently-used is the worst (it releases each
/// layer's experts just before they are needed again). Within a layer, the least recently used goes first.</remarks>
/// <remarks>Thread-safe: the node's expert entities compute on the thread pool. A computing expert holds a lease and is
/// never released under it; when every resident expert is leased, one more is loaded beyond the capacity until a lease
/// ends. Counters: <c>moecluster_expert_residency_total{result}</c> — hit (in memory), late (a prefetch still loading),
/// miss (loaded on demand) — and <c>moecluster_expert_prefetches_total{outcome}</c>.</remarks>
public sealed class ResidentExperts : IDisposable
{
    sealed class Entry
    {
        public readonly TaskCompletionSource<IExpertCompute> Ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Leases;
        public bool Prefetched, Used;
        public LinkedListNode<ExpertKey>? Recency;
        public bool Loaded => Ready.Task.IsCompletedSuccessfully;
    }

    readonly object gate = new();
    readonly Dictionary<ExpertKey, Entry> entries = new();
    /// <summary>Least recently used first.</summary>
    readonly LinkedList<ExpertKey> recency = new();
    readonly Func<ExpertKey, IExpertCompute> load;
    /// <summary>Prefetches load on a thread of their own: an expert entity waiting for one never waits for a thread-pool
    /// thread that other waiting entities occupy.</summary>
    readonly System.Collections.Concurrent.BlockingCollection<(ExpertKey Key, Entry Entry)> prefetches = new();
    readonly Thread loader;

    readonly int layers;
    /// <summary>The layer computing now (the last one acquired).</summary>
    int current;

    /// <param name="layers">Decoder layers of the model (the cycle experts are read in).</param>
    public ResidentExperts(int capacity, Func<ExpertKey, IExpertCompute> load, int layers = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        Capacity = capacity;
        this.load = load;
        this.layers = layers;
        loader = new Thread(() => { foreach (var (key, entry) in prefetches.GetConsumingEnumerable()) Fill(key, entry); })
        {
            IsBackground = true, Name = "expert-prefetch",
        };
        loader.Start();
    }

    public int Capacity { get; }
    public long Hits, Late, Misses, Prefetches, PrefetchesUsed, Evictions;

    /// <summary>Experts in memory or being loaded.</summary>
    public int Count { get { lock (gate) return entries.Count; } }

    /// <summary>Experts in memory.</summary>
    public int Loaded { get { lock (gate) return entries.Values.Count(e => e.Loaded); } }

    /// <summary>A computing expert: its weights stay in memory until the lease is disposed.</summary>
    public readonly struct Lease(ResidentExperts owner, ExpertKey key, IExpertCompute expert) : IDisposable
    {
        public IExpertCompute Expert { get; } = expert;
        public void Dispose() => owner.Release(key);
    }

    /// <summary>The expert's weights, loading them now if they are not in memory (or waiting for a prefetch in flight).</summary>
    public Lease Acquire(ExpertKey key)
    {
        Entry entry;
        bool loadHere = false;
        lock (gate)
        {
            if (entries.TryGetValue(key, out entry!))
            {
                if (entry.Loaded) { Hits++; Counted("hit"); }
                else { Late++; Counted("late"); }
                if (entry.Prefetched && !entry.Used) { PrefetchesUsed++; MoeMetrics.ExpertPrefetches.WithLabels("used").Inc(); }
            }
            else
            {
                entry = Add(key);
                loadHere = true;
                Misses++;
                Counted("miss");
            }
            entry.Used = true;
            entry.Leases++;
            current = key.Layer;
            Touch(key, entry);
        }
        if (loadHere) Fill(key, entry);
        try { return new Lease(this, key, entry.Ready.Task.GetAwaiter().GetResult()); }
        catch
        {
            Release(key);
            throw;
        }
    }

    /// <summary>Starts loading the expert in the background if it is not in memory; a resident one counts as recently
    /// used, so the coming layer does not find it released.</summary>
    public void Prefetch(ExpertKey key)
    {
        Entry entry;
        lock (gate)
        {
            if (entries.TryGetValue(key, out var known)) { Touch(key, known); return; }
            entry = Add(key);
            entry.Prefetched = true;
            Prefetches++;
            MoeMetrics.ExpertPrefetches.WithLabels("started").Inc();
            Touch(key, entry);
        }
        prefetches.Add((key, entry));
    }

    Entry Add(ExpertKey key)
    {
        var entry = new Entry();
        entries[key] = entry;
        return entry;
    }

    static void Counted(string result) => MoeMetrics.ExpertResidency.WithLabels(result).Inc();

    void Touch(ExpertKey key, Entry entry)
    {
        if (entry.Recency is not null) recency.Remove(entry.Recency);
        entry.Recency = recency.AddLast(key);
    }

    void Fill(ExpertKey key, Entry entry)
    {
        try
        {
            var expert = load(key);
            lock (gate)
            {
                entry.Ready.SetResult(expert);
                EvictOverCapacity();
            }
        }
        catch (Exception e)
        {
            lock (gate)
            {
                if (entries.TryGetValue(key, out var current) && current == entry) Forget(key, entry);
                entry.Ready.TrySetException(e);
            }
        }
    }

    void Release(ExpertKey key)
    {
        lock (gate)
        {
            if (entries.TryGetValue(key, out var entry) && entry.Leases > 0) entry.Leases--;
            EvictOverCapacity();
        }
    }

    /// <summary>While over capacity, releases unleased loaded experts: the layer needed last first, then the least
    /// recently used.</summary>
    void EvictOverCapacity()
    {
        if (entries.Count > Capacity)
        {
            int rank = 0;
            var candidates = recency.Select(key => (Key: key, Rank: rank++)).Where(c => entries[c.Key] is { Leases: 0, Loaded: true })
                .OrderByDescending(c => ((c.Key.Layer - current) % layers + layers) % layers).ThenBy(c => c.Rank).ToList();
            foreach (var (key, _) in candidates)
            {
                if (entries.Count <= Capacity) break;
                var entry = entries[key];
                if (entry.Prefetched && !entry.Used) MoeMetrics.ExpertPrefetches.WithLabels("unused").Inc();
                Forget(key, entry);
                entry.Ready.Task.Result.Dispose();
                Evictions++;
                MoeMetrics.ExpertEvictions.Inc();
            }
        }
        MoeMetrics.ExpertsResident.Set(entries.Count(e => e.Value.Loaded));
    }

    void Forget(ExpertKey key, Entry entry)
    {
        entries.Remove(key);
        if (entry.Recency is not null) recency.Remove(entry.Recency);
        entry.Recency = null;
    }

    public void Dispose()
    {
        prefetches.CompleteAdding();
        loader.Join(TimeSpan.FromSeconds(10));
        lock (gate)
        {
            foreach (var e in entries.Values.Where(e => e.Loaded)) e.Ready.Task.Result.Dispose();
            entries.Clear();
            recency.Clear();
        }
    }
}

/// <summary>An expert whose weights live in the node's <see cref="ResidentExperts"/>: each computation leases them,
/// loading them first if they were released.</summary>
public sealed class PagedExpert(ExpertKey key, ResidentExperts resident, long bytesWhenLoaded) : IExpertCompute
{
    public TorchSharp.torch.Tensor Forward(TorchSharp.torch.Tensor rows)
    {
        using var lease = resident.Acquire(key);
        return lease.Expert.Forward(rows);
    }

    public long ParameterBytes => bytesWhenLoaded;

    /// <summary>The weights belong to the resident set, not to the entity.</summary>
    public void Dispose() { }
}
