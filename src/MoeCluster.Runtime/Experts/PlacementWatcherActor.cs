using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using MoeCluster.Runtime.Metrics;

namespace MoeCluster.Runtime.Experts;

/// <summary>Keeps an <see cref="ExpertDirectory"/> current by asking the expert region for the cluster's shard
/// placement every second and at once when membership changes. Also answers <see cref="GetPlacement"/>.
/// Routers send a node's experts to that node's expert host only while the node is up and reachable; a node that is
/// unreachable, leaving or draining (<see cref="NodeDraining"/>) is dropped from the directory at once, so routers
/// reach its experts through the shard region, which follows them through hand-off to their new homes.</summary>
public sealed class PlacementWatcherActor : ReceiveActor, IWithTimers
{
    public const string Name = "placement-watcher";

    public sealed record GetPlacement;
    public sealed record Placement(IReadOnlyDictionary<string, string> ExpertNodes);
    /// <summary>An expert node about to hand its experts off (it is shutting down): stop dispatching to it directly.
    /// Answered with <see cref="NodeDrainingAcknowledged"/> once the directory no longer lists the node.</summary>
    public sealed record NodeDraining(string Node);
    public sealed record NodeDrainingAcknowledged(string Node);
    /// <summary>These experts are about to be handed off to other nodes (a rebalance round, or their node is leaving).
    /// Sent to every gateway node's watcher, which keeps them out of the directory until they show up at a new home,
    /// and to its <c>GatewayActor</c>, which finishes the step in flight, acknowledges, and starts no step until each
    /// has answered from its new home. Sharding delivers at most once across a hand-off: a region drops what it
    /// buffered for a shard between BeginHandOff and HandOff, so only a hand-off with no expert work in flight loses
    /// nothing. Answered with <see cref="ExpertsMovingAcknowledged"/>.</summary>
    /// <param name="From">expert id → the node it leaves.</param>
    public sealed record ExpertsMoving(IReadOnlyDictionary<string, string> From);
    public sealed record ExpertsMovingAcknowledged;
    sealed record Poll;

    readonly IActorRef expertRegion;
    readonly ExpertDirectory directory;
    /// <summary>Nodes that announced a shutdown; forgotten when they are removed (a new process at the same address
    /// is a new member).</summary>
    readonly HashSet<string> draining = new();
    /// <summary>Expert → the node it is moving away from, and when we stop waiting for the move to show.</summary>
    readonly Dictionary<string, (string from, DateTime until)> moving = new();
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef expertRegion, ExpertDirectory directory) =>
        Akka.Actor.Props.Create(() => new PlacementWatcherActor(expertRegion, directory));

    public PlacementWatcherActor(IActorRef expertRegion, ExpertDirectory directory)
    {
        this.expertRegion = expertRegion;
        this.directory = directory;
        Receive<Poll>(_ => expertRegion.Tell(new GetClusterShardingStats(TimeSpan.FromSeconds(3))));
        Receive<ClusterShardingStats>(Update);
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            draining.Remove(m.Member.Address.ToString());
            directory.RemoveNode(m.Member.Address.ToString());
            Self.Tell(new Poll());
            UpdateMembers();
        });
        Receive<ClusterEvent.UnreachableMember>(m => { directory.RemoveNode(m.Member.Address.ToString()); UpdateMembers(); });
        Receive<ClusterEvent.MemberLeft>(m => { directory.RemoveNode(m.Member.Address.ToString()); UpdateMembers(); });
        Receive<ClusterEvent.MemberExited>(m => { directory.RemoveNode(m.Member.Address.ToString()); UpdateMembers(); });
        Receive<NodeDraining>(m =>
        {
            draining.Add(m.Node);
            directory.RemoveNode(m.Node);
            Sender.Tell(new NodeDrainingAcknowledged(m.Node));
        });
        Receive<ExpertsMoving>(m =>
        {
            var until = DateTime.UtcNow + MoveWait;
            foreach (var (id, from) in m.From) moving[id] = (from, until);
            directory.Replace(directory.Placement.RemoveRange(m.From.Keys));
            Sender.Tell(new ExpertsMovingAcknowledged());
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { Self.Tell(new Poll()); UpdateMembers(); });
        Receive<ClusterEvent.IReachabilityEvent>(_ => UpdateMembers());
        Receive<GetPlacement>(_ => Sender.Tell(new Placement(directory.Placement)));
    }

    protected override void PreStart()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Timers.StartPeriodicTimer("poll", new Poll(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    /// <summary>Tells every gateway node that this node is about to hand its experts off: the watchers stop
    /// dispatching to it directly, and the gateways pause expert work until the experts answer from their new homes
    /// (<see cref="AnnounceMovesAsync"/>). Run by the expert node's coordinated shutdown before its shard region hands
    /// off, so no expert work is in flight during the hand-off and none arrives after the region is gone.</summary>
    /// <summary>How long an expert announced as moving is kept out of the directory at most (the hand-off timeout).</summary>
    static readonly TimeSpan MoveWait = TimeSpan.FromSeconds(60);

    /// <summary>Tells every gateway node (its watcher and its gateway) that <paramref name="expertIds"/> are about to be
    /// handed off, and waits (up to <paramref name="timeout"/>) until each has no expert work in flight and sends none.
    /// A gateway that does not answer in time falls back on its routers' timeouts.</summary>
    public static Task AnnounceMovesAsync(ActorSystem system, IReadOnlyDictionary<string, string> from, TimeSpan timeout)
    {
        var ids = from.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var what = $"experts {string.Join(", ", ids.Take(8))}{(ids.Count > 8 ? ", …" : "")} are moving";
        return Task.WhenAll(
            AskEveryGatewayAsync<ExpertsMovingAcknowledged>(system, Name, new ExpertsMoving(from), timeout, what),
            AskEveryGatewayAsync<ExpertsMovingAcknowledged>(system, "gateway", new ExpertsMoving(from), timeout, what));
    }

    static async Task AskEveryGatewayAsync<TAck>(ActorSystem system, string actor, object message, TimeSpan timeout, string what)
    {
        var cluster = Cluster.Get(system);
        var gateways = cluster.State.Members.Where(m => m.HasRole(NodeRoles.Gateway) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp).ToList();
        await Task.WhenAll(gateways.Select(async g =>
        {
            try { await system.ActorSelection($"{g.Address}/user/{actor}").Ask<TAck>(message, timeout); }
            catch (Exception e) when (e is AskTimeoutException or ActorNotFoundException or TaskCanceledException)
            {
                system.Log.Warning("gateway {0} did not acknowledge that {1} ({2}); its routers fall back on their timeouts", g.Address, what, e.Message);
            }
        }));
    }

    public static async Task AnnounceDrainingAsync(ActorSystem system, IActorRef expertRegion, TimeSpan timeout)
    {
        var self = Cluster.Get(system).SelfAddress.ToString();
        await AskEveryGatewayAsync<NodeDrainingAcknowledged>(system, Name, new NodeDraining(self), timeout, $"{self} is draining");
        var state = await expertRegion.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, timeout);
        var experts = state.Shards.SelectMany(s => s.EntityIds).Distinct().ToDictionary(e => e, _ => self);
        if (experts.Count > 0) await AnnounceMovesAsync(system, experts, timeout);
    }

    void Update(ClusterShardingStats stats)
    {
        var cluster = Cluster.Get(Context.System);
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var up = state.Members.Where(m => m.Status == MemberStatus.Up).Select(m => m.Address).ToHashSet();
        var builder = ImmutableDictionary.CreateBuilder<string, string>();
        foreach (var (regionAddress, region) in stats.Regions)
        {
            var address = regionAddress.HasGlobalScope ? regionAddress : cluster.SelfAddress;
            var node = address.ToString();
            if (unreachable.Contains(address) || !up.Contains(address) || draining.Contains(node)) continue;
            foreach (var shard in region.Stats.Where(s => s.Value > 0))
            {
                if (moving.TryGetValue(shard.Key, out var move))
                {
                    if (move.from == node && DateTime.UtcNow < move.until) continue;   // not moved yet
                    moving.Remove(shard.Key);
                }
                builder[shard.Key] = node;
            }
        }
        var next = builder.ToImmutable();
        var previous = directory.Placement;
        int moved = next.Count(p => previous.TryGetValue(p.Key, out var before) && before != p.Value);
        if (moved > 0) MoeMetrics.PlacementMoves.Inc(moved);
        directory.Replace(next);
    }

    static void UpdateMembers()
    {
        var state = Cluster.Get(Context.System).State;
        var unreachable = state.Unreachable.ToHashSet();
        foreach (var role in NodeRoles.All)
            foreach (var status in new[] { "up", "joining", "leaving", "unreachable" })
                MoeMetrics.ClusterMembers.WithLabels(role, status).Set(state.Members.Count(m => m.HasRole(role) && status switch
                {
                    "unreachable" => unreachable.Contains(m),
                    "up" => m.Status == MemberStatus.Up && !unreachable.Contains(m),
                    "joining" => m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp,
                    _ => m.Status is MemberStatus.Leaving or MemberStatus.Exiting,
                }));
    }
}
