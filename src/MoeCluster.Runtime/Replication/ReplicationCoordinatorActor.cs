using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Placement;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using ExpertLoad = MoeCluster.Runtime.Routing.ExpertLoad;
using GetExpertLoad = MoeCluster.Runtime.Routing.GetExpertLoad;

namespace MoeCluster.Runtime.Replication;

/// <summary>
/// The hot-expert rebalancer: a cluster singleton on the gateway role. Every <see cref="HotExpertOptions.Interval"/> it
/// collects tokens per expert from the routers of every gateway node, records the increase since its last poll in a
/// <see cref="SlidingLoadWindow"/>, and asks <see cref="ReplicationPlanner"/> (a pure function) which redundant replicas
/// to add and retire. It carries the decision out: an added replica is loaded on its node first
/// (<see cref="LoadReplica"/> → <see cref="ReplicaLoaded"/>) and only then published to the routers; a retired one is
/// unpublished first and then dropped (<see cref="DropReplica"/>), so no router sends rows to a copy that is not there.
/// Every change is logged with its reason and counted in <c>moecluster_replication_changes_total</c>.
/// </summary>
/// <remarks>Primaries are the sharding entities, read from this node's <see cref="ExpertDirectory"/>; the coordinator
/// owns only the redundant replicas. A node that leaves drops out of every replica set at the next poll (and at once in
/// each gateway's directory). A coordinator that takes over on another gateway adopts the replicas the expert hosts
/// report.</remarks>
public sealed class ReplicationCoordinatorActor : ReceiveActor, IWithTimers
{
    public const string Name = "replication-coordinator";

    /// <summary>Expert slots for a node without an <c>expert-slots-N</c> role (unlimited, but small enough to sum).</summary>
    const int UnlimitedSlots = 1_000_000;

    sealed record Tick;
    sealed record LoadCollected(IReadOnlyList<(string Gateway, ExpertLoad Load)> Loads);
    sealed record AddFinished(ExpertId Expert, string Node, string? Error);

    readonly HotExpertOptions options;
    readonly ExpertDirectory directory;
    readonly ModelConfig config;
    readonly Cluster cluster;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly SlidingLoadWindow window;
    /// <summary>Loaded redundant replicas, in the order they were added (the routers split in this order).</summary>
    readonly SortedDictionary<ExpertId, List<string>> redundant = new();
    /// <summary>Replicas being loaded: already in the plan the planner sees, not yet published.</summary>
    readonly HashSet<(ExpertId Expert, string Node)> loading = new();
    readonly Dictionary<(string Gateway, int Layer), (long[] Tokens, long Steps)> previous = new();
    ReplicationHistory history = ReplicationHistory.Empty;
    long step;
    bool collecting, adopted;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HotExpertOptions options, ExpertDirectory directory, ModelConfig config) =>
        Akka.Actor.Props.Create(() => new ReplicationCoordinatorActor(options, directory, config));

    public ReplicationCoordinatorActor(HotExpertOptions options, ExpertDirectory directory, ModelConfig config)
    {
        options.Thresholds.Validate();
        this.options = options;
        this.directory = directory;
        this.config = config;
        cluster = Cluster.Get(Context.System);
        window = new SlidingLoadWindow(options.WindowSteps);
        window.Record(0, new Dictionary<ExpertId, long>());   // step 0: the first poll's increase then spans its steps
        Receive<Tick>(_ => Collect());
        Receive<LoadCollected>(OnLoad);
        Receive<AddFinished>(OnAdded);
        Receive<HostedReplicas>(Adopt);
        Receive<ReplicaDropped>(_ => { });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", new Tick(), options.Interval, options.Interval);

    IEnumerable<Member> UpMembers(string role)
    {
        var state = cluster.State;
        var unreachable = state.Unreachable.ToHashSet();
        return state.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole(role) && !unreachable.Contains(m));
    }

    ActorSelection Host(string node) => Context.ActorSelection($"{node}/user/{ExpertHostActor.Name}");

    void Collect()
    {
        if (!adopted)
        {   // a coordinator that took over (or restarted) learns which replicas are already loaded
            adopted = true;
            foreach (var m in UpMembers(NodeRoles.Expert)) Host(m.Address.ToString()).Tell(new GetHostedReplicas());
        }
        if (collecting) return;
        collecting = true;
        var system = Context.System;
        var timeout = options.LoadTimeout;
        var asks = UpMembers(NodeRoles.Gateway).SelectMany(g => config.MoeLayers.Select(async layer =>
        {
            var gateway = g.Address.ToString();
            try
            {
                var load = await system.ActorSelection($"{gateway}/user/{GatewayActor.Name}/router-{layer}").Ask<ExpertLoad>(new GetExpertLoad(), timeout);
                return ((string Gateway, ExpertLoad Load)?)(gateway, load);
            }
            catch (Exception) { return null; }   // a gateway still starting or leaving: its load counts next time
        })).ToList();
        Task.WhenAll(asks).PipeTo(Self, success: r => new LoadCollected(r.Where(x => x is not null).Select(x => x!.Value).ToList()));
    }

    void OnLoad(LoadCollected m)
    {
        collecting = false;
        RecordIncrease(m.Loads);
        Decide();
        Publish();
    }

    /// <summary>Adds what every router routed since the last poll to the window, at the step count of the busiest
    /// gateway (gateways step in parallel, so the window spans about the same time however many there are).</summary>
    void RecordIncrease(IReadOnlyList<(string Gateway, ExpertLoad Load)> loads)
    {
        var counts = config.MoeLayers.SelectMany(l => Enumerable.Range(0, config.NumExperts).Select(e => new ExpertId(l, e)))
            .ToDictionary(e => e, _ => 0L);
        var stepsByGateway = new Dictionary<string, long>();
        foreach (var (gateway, load) in loads)
        {
            if (load.CumulativeTokens is not { } now) continue;
            var (before, beforeSteps) = previous.TryGetValue((gateway, load.Layer), out var p) ? p : (new long[now.Length], 0L);
            bool restarted = load.TotalSteps < beforeSteps || now.Where((t, e) => e < before.Length && t < before[e]).Any();
            if (restarted) (before, beforeSteps) = (new long[now.Length], 0L);
            for (int e = 0; e < now.Length; e++) counts[new ExpertId(load.Layer, e)] += now[e] - before[e];
            stepsByGateway[gateway] = Math.Max(stepsByGateway.GetValueOrDefault(gateway), load.TotalSteps - beforeSteps);
            previous[(gateway, load.Layer)] = ((long[])now.Clone(), load.TotalSteps);
        }
        long advance = stepsByGateway.Values.DefaultIfEmpty(0).Max();
        if (advance == 0) return;
        step += advance;
        window.Record(step, counts);
    }

    void Decide()
    {
        var nodes = UpMembers(NodeRoles.Expert).Select(m => new NodeCapacity(m.Address.ToString(), Slots(m))).ToList();
        var live = nodes.Select(n => n.Address).ToHashSet();
        foreach (var (expert, copies) in redundant)
            foreach (var gone in copies.Where(n => !live.Contains(n)).ToList())
            {
                copies.Remove(gone);
                log.Info("replica of {0} on {1} is gone: the node left the cluster", expert, gone);
            }
        loading.RemoveWhere(l => !live.Contains(l.Node));
        foreach (var empty in redundant.Where(r => r.Value.Count == 0).Select(r => r.Key).ToList()) redundant.Remove(empty);
        SetGauges();

        var load = window.Snapshot();
        if (load.Steps == 0 || nodes.Count == 0) return;
        var plan = CurrentPlan(live);
        if (plan is null) return;
        ReplicationDecision decision;
        try { decision = ReplicationPlanner.Plan(load, plan, nodes, options.Thresholds, history); }
        catch (PlacementException e)
        {
            log.Warning("replication: no decision this round: {0}", e.Message);
            return;
        }
        history = decision.History;
        foreach (var note in decision.Notes) log.Debug("replication: {0}", note);
        foreach (var change in decision.Changes)
        {
            log.Info("replication {0} {1} on {2}: {3}", change.Kind == ChangeKind.Add ? "adds" : "retires", change.Expert, change.Node, change.Reason);
            MoeMetrics.ReplicationChanges.WithLabels(change.Kind == ChangeKind.Add ? "add" : "retire").Inc();
            if (change.Kind == ChangeKind.Add) Add(change.Expert, change.Node);
            else Retire(change.Expert, change.Node);
        }
    }

    /// <summary>Primaries from the shard coordinator's placement, plus the redundant replicas loaded or loading; null
    /// while some expert has no live primary yet (placement is still settling).</summary>
    PlacementPlan? CurrentPlan(HashSet<string> live)
    {
        var replicas = new Dictionary<ExpertId, IReadOnlyList<string>>();
        foreach (var layer in config.MoeLayers)
            for (int e = 0; e < config.NumExperts; e++)
            {
                var expert = new ExpertId(layer, e);
                var primary = directory.NodeOf(expert.ToString());
                if (primary is null || !live.Contains(primary))
                {
                    log.Debug("replication: waiting for {0} to be placed", expert);
                    return null;
                }
                var nodes = new List<string> { primary };
                nodes.AddRange(redundant.GetValueOrDefault(expert, []).Where(n => !nodes.Contains(n)).ToList());
                nodes.AddRange(loading.Where(l => l.Expert == expert && !nodes.Contains(l.Node)).Select(l => l.Node).ToList());
                replicas[expert] = nodes;
            }
        return new PlacementPlan(replicas);
    }

    void Add(ExpertId expert, string node)
    {
        loading.Add((expert, node));
        Host(node).Ask<ReplicaLoaded>(new LoadReplica(expert.ToString()), options.LoadTimeout)
            .PipeTo(Self, success: _ => new AddFinished(expert, node, null), failure: e => new AddFinished(expert, node, e.Message));
    }

    void OnAdded(AddFinished m)
    {
        if (!loading.Remove((m.Expert, m.Node)))
        {   // retired or its node left while it loaded
            Host(m.Node).Tell(new DropReplica(m.Expert.ToString()));
            return;
        }
        if (m.Error is not null)
        {
            log.Warning("replica of {0} on {1} did not load: {2}", m.Expert, m.Node, m.Error);
            return;
        }
        if (!redundant.TryGetValue(m.Expert, out var copies)) redundant[m.Expert] = copies = new List<string>();
        if (!copies.Contains(m.Node) && directory.NodeOf(m.Expert.ToString()) != m.Node) copies.Add(m.Node);
        log.Info("replica of {0} on {1} loaded; routers now split its tokens over {2} nodes", m.Expert, m.Node, copies.Count + 1);
        SetGauges();
        Publish();
    }

    void Retire(ExpertId expert, string node)
    {
        if (loading.Remove((expert, node))) return;   // OnAdded drops it when it finishes loading
        if (redundant.TryGetValue(expert, out var copies))
        {
            copies.Remove(node);
            if (copies.Count == 0) redundant.Remove(expert);
        }
        SetGauges();
        Publish();   // routers stop sending first; rows already on their way fall back to the primary at the host
        Host(node).Tell(new DropReplica(expert.ToString()));
    }

    void Adopt(HostedReplicas m)
    {
        foreach (var id in m.ExpertIds)
        {
            if (!ExpertId.TryParse(id, out var expert)) continue;
            if (!redundant.TryGetValue(expert, out var copies)) redundant[expert] = copies = new List<string>();
            if (!copies.Contains(m.Node)) copies.Add(m.Node);
            log.Info("adopted the replica of {0} on {1}", expert, m.Node);
        }
        SetGauges();
        Publish();
    }

    /// <summary>Sends the replica sets to every gateway node; repeated every round, so a gateway that joined catches up.</summary>
    void Publish()
    {
        var sets = redundant.Where(r => r.Value.Count > 0).ToDictionary(r => r.Key.ToString(), r => r.Value.ToArray());
        foreach (var g in UpMembers(NodeRoles.Gateway))
            Context.ActorSelection($"{g.Address}/user/{ReplicaDirectoryActor.Name}").Tell(new ReplicasChanged(sets));
    }

    void SetGauges()
    {
        foreach (var layer in config.MoeLayers)
            MoeMetrics.ExpertReplicas.WithLabels(layer.ToString()).Set(redundant.Where(r => r.Key.Layer == layer).Sum(r => r.Value.Count));
    }

    static int Slots(Member m)
    {
        foreach (var role in m.Roles)
            if (role.StartsWith(NodeRoles.ExpertSlotsPrefix, StringComparison.Ordinal)
                && int.TryParse(role.AsSpan(NodeRoles.ExpertSlotsPrefix.Length), out var slots) && slots > 0)
                return slots;
        return UnlimitedSlots;
    }
}
