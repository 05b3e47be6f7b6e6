using System.Collections.Concurrent;
using Akka.Actor;
using MoeCluster.Runtime.Metrics;

namespace MoeCluster.Runtime.Experts;

/// <summary>What this node's expert actors (sharded primaries and redundant replicas) hold right now: which are still
/// loading their weights and how many bytes of weights are resident. An Akka extension, one per actor system, so the
/// node's readiness check and its metrics read the same facts the actors write.</summary>
public sealed class HostedExperts : IExtension
{
    readonly ConcurrentDictionary<string, byte> loading = new();
    readonly ConcurrentDictionary<string, long> loaded = new();

    public static HostedExperts Get(ActorSystem system) => system.WithExtension<HostedExperts, HostedExpertsProvider>();

    /// <summary>Experts whose weights are being read (an expert placed here but not yet able to compute).</summary>
    public int Loading => loading.Count;

    public int Loaded => loaded.Count;

    public long WeightBytes => loaded.Values.Sum();

    /// <summary>Called by the expert actor before it reads its weights; <paramref name="actor"/> tells a replica from a
    /// primary of the same expert.</summary>
    public void StartedLoading(string actor) { loading[actor] = 0; Publish(); }

    public void FinishedLoading(string actor, long bytes)
    {
        loading.TryRemove(actor, out _);
        loaded[actor] = bytes;
        Publish();
    }

    /// <summary>The actor stopped (hand-off, replica retired, failed load): its weights are gone.</summary>
    public void Released(string actor)
    {
        loading.TryRemove(actor, out _);
        loaded.TryRemove(actor, out _);
        Publish();
    }

    void Publish()
    {
        MoeMetrics.ExpertsHosted.Set(loaded.Count);
        MoeMetrics.ExpertWeightBytes.Set(WeightBytes);
        MoeMetrics.ExpertsLoading.Set(loading.Count);
    }

    sealed class HostedExpertsProvider : ExtensionIdProvider<HostedExperts>
    {
        public override HostedExperts CreateExtension(ExtendedActorSystem system) => new();
    }
}
