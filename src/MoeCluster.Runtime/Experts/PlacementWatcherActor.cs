using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using MoeCluster.Runtime.Metrics;

namespace MoeCluster.Runtime.Experts;

/// <summary>Keeps an <see cref="ExpertDirectory"/> current by asking the expert region for the cluster's shard
/// placement every second and at once when membership changes. Also answers <see cref="GetPlacement"/>.</summary>
public sealed class PlacementWatcherActor : ReceiveActor, IWithTimers
{
    public sealed record GetPlacement;
    public sealed record Placement(IReadOnlyDictionary<string, string> ExpertNodes);
    sealed record Poll;

    readonly IActorRef expertRegion;
    readonly ExpertDirectory directory;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef expertRegion, ExpertDirectory directory) =>
        Akka.Actor.Props.Create(() => new PlacementWatcherActor(expertRegion, directory));

    public PlacementWatcherActor(IActorRef expertRegion, ExpertDirectory directory)
    {
        this.expertRegion = expertRegion;
        this.directory = directory;
        Receive<Poll>(_ => expertRegion.Tell(new GetClusterShardingStats(TimeSpan.FromSeconds(3))));
        Receive<ClusterShardingStats>(Update);
        Receive<ClusterEvent.MemberRemoved>(m => { directory.RemoveNode(m.Member.Address.ToString()); Self.Tell(new Poll()); UpdateMembers(); });
        Receive<ClusterEvent.UnreachableMember>(m => { directory.RemoveNode(m.Member.Address.ToString()); UpdateMembers(); });
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

    void Update(ClusterShardingStats stats)
    {
        var cluster = Cluster.Get(Context.System);
        var unreachable = cluster.State.Unreachable.Select(m => m.Address).ToHashSet();
        var builder = ImmutableDictionary.CreateBuilder<string, string>();
        foreach (var (address, region) in stats.Regions)
        {
            if (unreachable.Contains(address)) continue;
            var node = (address.HasGlobalScope ? address : cluster.SelfAddress).ToString();
            foreach (var shard in region.Stats.Where(s => s.Value > 0)) builder[shard.Key] = node;
        }
        var next = builder.ToImmutable();
        var previous = directory.Placement;
        int moved = next.Count(p => previous.TryGetValue(p.Key, out var before) && before != p.Value);
        if (moved > 0) MoeMetrics.PlacementMoves.Inc(moved);
        directory.Replace(next);
        var self = cluster.SelfAddress.ToString();
        MoeMetrics.ExpertsHosted.Set(next.Count(p => p.Value == self));
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
