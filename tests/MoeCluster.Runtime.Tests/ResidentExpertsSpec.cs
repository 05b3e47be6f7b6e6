using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Protocol;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>A node's resident set keeps at most its capacity of experts in memory, releases the least recently used one
/// nobody computes with, and loads ahead of time on a prefetch.</summary>
public class ResidentExpertsSpec
{
    sealed class FakeExpert(ExpertKey key, List<ExpertKey> disposed) : IExpertCompute
    {
        public Tensor Forward(Tensor rows) => rows.alias();
        public long ParameterBytes => 1;
        public void Dispose() { lock (disposed) disposed.Add(key); }
    }

    static ExpertKey E(int e) => new(0, e);

    /// <summary>The prefetch has finished loading (the entry is in memory, not just announced).</summary>
    static bool FinishedLoading(ResidentExperts resident) => resident.Loaded == 1;

    [Fact]
    public void The_least_recently_used_expert_not_in_use_is_released_for_a_new_one()
    {
        var loads = new List<ExpertKey>();
        var disposed = new List<ExpertKey>();
        using var resident = new ResidentExperts(2, k => { lock (loads) loads.Add(k); return new FakeExpert(k, disposed); });   // one layer: plain LRU

        resident.Acquire(E(0)).Dispose();
        resident.Acquire(E(1)).Dispose();
        resident.Acquire(E(0)).Dispose();                    // a hit; E1 is now the least recently used
        using (resident.Acquire(E(2)))                        // a miss: E1 goes
        {
            Assert.Equal([E(1)], disposed);
            using (resident.Acquire(E(0)))
            using (resident.Acquire(E(3)))                    // both others are in use: one beyond capacity for now
                Assert.Equal(3, resident.Count);
        }
        Assert.Equal(2, resident.Count);                      // back to capacity once the leases end
        Assert.Equal([E(0), E(1), E(2), E(3)], loads);
        Assert.Equal(2, resident.Hits);                        // E0, twice
        Assert.Equal(4, resident.Misses);
    }

    [Fact]
    public void Of_the_experts_not_in_use_the_one_whose_layer_comes_back_last_is_released()
    {
        var disposed = new List<ExpertKey>();
        // Four layers, read 0, 1, 2, 3, 0, 1, … with room for three experts.
        using var resident = new ResidentExperts(3, k => new FakeExpert(k, disposed), layers: 4);
        resident.Acquire(new ExpertKey(0, 0)).Dispose();
        resident.Acquire(new ExpertKey(1, 0)).Dispose();
        resident.Acquire(new ExpertKey(2, 0)).Dispose();
        resident.Acquire(new ExpertKey(3, 0)).Dispose();   // now at layer 3: layer 0 comes next, layer 2 last
        Assert.Equal([new ExpertKey(2, 0)], disposed);     // least-recently-used would have released layer 0's
        resident.Acquire(new ExpertKey(0, 0)).Dispose();
        Assert.Equal(0, resident.Misses - 4);               // layer 0's expert was still there
    }

    [Fact]
    public async Task A_prefetched_expert_is_in_memory_when_the_layer_needs_it()
    {
        var disposed = new List<ExpertKey>();
        using var resident = new ResidentExperts(2, k => new FakeExpert(k, disposed));
        resident.Prefetch(E(5));
        await Poll.UntilAsync(() => resident.Hits + resident.Late == 0 && resident.Prefetches == 1 && FinishedLoading(resident));
        using (var lease = resident.Acquire(E(5))) Assert.NotNull(lease.Expert);
        Assert.Equal(1, resident.PrefetchesUsed);
        Assert.Equal(0, resident.Misses);
        Assert.True(resident.Hits + resident.Late == 1);
    }

    [Fact]
    public void A_failed_load_reaches_the_computation_and_is_tried_again_next_time()
    {
        int attempts = 0;
        using var resident = new ResidentExperts(2, k => ++attempts == 1 ? throw new IOException("disk gone") : new FakeExpert(k, []));
        Assert.Throws<IOException>(() => resident.Acquire(E(1)));
        Assert.Equal(0, resident.Count);
        using (resident.Acquire(E(1))) Assert.Equal(2, attempts);
    }
}
