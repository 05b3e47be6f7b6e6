using System.Diagnostics;
using Akka.Actor;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Gateway;

/// <summary>
/// Experts being handed off (a rebalance round, or their node leaving), announced by
/// <see cref="PlacementWatcherActor.ExpertsMoving"/>. Akka sharding drops what a region buffered for a shard during a
/// hand-off, so no expert work may be in flight: the gateway acknowledges only once no attempt of a step runs, and
/// starts no step until every moving expert has answered from a node other than the one it left — or
/// <see cref="Timeout"/> has passed, after which the routers' timeouts cover any straggler.
/// </summary>
internal sealed class MoveBarrier
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    readonly Dictionary<string, string> from = new();
    readonly List<IActorRef> unacknowledged = new();
    Stopwatch clock = new();

    public bool Active => from.Count > 0;
    public bool Acknowledged => unacknowledged.Count == 0;
    public bool TimedOut => clock.Elapsed > Timeout;
    public IEnumerable<string> Moving => from.Keys;
    public TimeSpan Elapsed => clock.Elapsed;

    public void Announce(IReadOnlyDictionary<string, string> moves, IActorRef announcer)
    {
        if (!Active) clock = Stopwatch.StartNew();
        foreach (var (id, node) in moves) from[id] = node;
        unacknowledged.Add(announcer);
    }

    /// <summary>Nothing of ours is in flight: the hand-offs may begin.</summary>
    public void Acknowledge()
    {
        foreach (var a in unacknowledged) a.Tell(new PlacementWatcherActor.ExpertsMovingAcknowledged());
        unacknowledged.Clear();
    }

    /// <summary>Asks each moving expert to start: its answer says where it lives now.</summary>
    public void Probe(IActorRef expertRegion)
    {
        if (!Acknowledged) return;
        foreach (var id in from.Keys) expertRegion.Tell(new StartExpert(id));
    }

    /// <summary>Records an expert's answer; true when it was the last one the barrier waited for.</summary>
    public bool Arrived(ExpertStarted m)
    {
        if (!Acknowledged || !from.TryGetValue(m.ExpertId, out var left) || m.Node == left) return false;
        from.Remove(m.ExpertId);
        return from.Count == 0;
    }

    public void Lift()
    {
        Acknowledge();
        from.Clear();
    }
}
