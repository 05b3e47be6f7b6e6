using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>One per expert node, at /user/expert-host. Receives a router's per-node batch (<see cref="DispatchTokens"/>),
/// hands each item to its expert — the sharding entity through the node's shard region (local delivery, tensors not
/// copied), or, for items marked <c>Replica</c>, this node's redundant replica of a hot expert — gathers the outputs
/// and answers with one <see cref="TokensComputed"/>. If an expert has moved away, the region forwards the item to its
/// new home; a replica item whose replica is gone goes to the primary the same way; the router's timeout covers
/// anything that never answers.
///
/// Redundant replicas are plain children (<c>replica-L{l}.E{e}</c>, an <see cref="ExpertActor"/> each) loaded on the
/// replication coordinator's <see cref="LoadReplica"/> and stopped on <see cref="DropReplica"/>.</summary>
public sealed class ExpertHostActor : ReceiveActor
{
    public const string Name = "expert-host";
    public const string ReplicaPrefix = "replica-";

    sealed class Pending(IActorRef router, DispatchTokens request)
    {
        public IActorRef Router { get; } = router;
        public DispatchTokens Request { get; } = request;
        public readonly ExpertInput?[] Outputs = new ExpertInput?[request.Items.Count];
        public int Remaining = request.Items.Count;
    }

    /// <summary>A replica child: who waits for it to finish loading (answered together once it has).</summary>
    sealed class Replica(IActorRef actor)
    {
        public IActorRef Actor { get; } = actor;
        public bool Loaded;
        public readonly List<IActorRef> Waiting = new();
    }

    readonly IActorRef expertRegion;
    readonly ModelSource model;
    readonly Dictionary<long, (Pending pending, int index)> inFlight = new();
    readonly Dictionary<string, Replica> replicas = new();
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly string node;
    long nextCorrelation;

    public static Props Props(IActorRef expertRegion, ModelSource model) => Akka.Actor.Props.Create(() => new ExpertHostActor(expertRegion, model));

    public ExpertHostActor(IActorRef expertRegion, ModelSource model)
    {
        this.expertRegion = expertRegion;
        this.model = model;
        node = Cluster.Get(Context.System).SelfAddress.ToString();
        Receive<DispatchTokens>(Dispatch);
        Receive<ExpertComputed>(Collect);
        Receive<LoadReplica>(Load);
        Receive<ExpertStarted>(Loaded);
        Receive<DropReplica>(Drop);
        Receive<GetHostedReplicas>(_ => Sender.Tell(new HostedReplicas(node, replicas.Where(r => r.Value.Loaded).Select(r => r.Key).ToArray())));
        Receive<Terminated>(m => Forget(m.ActorRef));
    }

    void Dispatch(DispatchTokens m)
    {
        var pending = new Pending(Sender, m);
        for (int i = 0; i < m.Items.Count; i++)
        {
            long correlation = ++nextCorrelation;
            inFlight[correlation] = (pending, i);
            MoeMetrics.ExpertHostInFlight.Inc();
            var item = m.Items[i];
            var id = new ExpertKey(m.Layer, item.Expert).EntityId;
            var message = new ComputeExpert(id, correlation, item.Rows);
            if (item.Replica && replicas.TryGetValue(id, out var replica) && replica.Loaded)
            {
                MoeMetrics.ReplicaTokens.WithLabels(node).Inc(item.Rows.Shape[0]);
                replica.Actor.Tell(message);
            }
            else expertRegion.Tell(message);   // the primary, wherever it lives
        }
        if (m.Items.Count == 0) Sender.Tell(new TokensComputed(m.DispatchId, m.Layer, [], node));
    }

    void Collect(ExpertComputed m)
    {
        if (!inFlight.Remove(m.CorrelationId, out var entry))
        {   // a late answer for a dispatch the router already gave up on
            m.Output.Take().Dispose();
            return;
        }
        MoeMetrics.ExpertHostInFlight.Dec();
        var (pending, index) = entry;
        var item = pending.Request.Items[index];
        pending.Outputs[index] = new ExpertInput(item.Expert, m.Output, item.Replica);
        if (--pending.Remaining > 0) return;
        pending.Router.Tell(new TokensComputed(pending.Request.DispatchId, pending.Request.Layer, pending.Outputs!, node));
    }

    void Load(LoadReplica m)
    {
        if (replicas.TryGetValue(m.ExpertId, out var existing))
        {
            if (existing.Loaded) Sender.Tell(new ReplicaLoaded(m.ExpertId, node));
            else existing.Waiting.Add(Sender);
            return;
        }
        // The child loads its weights in PreStart; StartExpert is answered after that, so ExpertStarted means loaded.
        var child = Context.ActorOf(ExpertActor.Props(m.ExpertId, model), ReplicaPrefix + m.ExpertId);
        Context.Watch(child);
        var replica = new Replica(child);
        replica.Waiting.Add(Sender);
        replicas[m.ExpertId] = replica;
        child.Tell(new StartExpert(m.ExpertId));
    }

    void Loaded(ExpertStarted m)
    {
        if (!replicas.TryGetValue(m.ExpertId, out var replica) || !Sender.Equals(replica.Actor)) return;
        replica.Loaded = true;
        log.Info("replica of {0} loaded on {1} ({2} bytes)", m.ExpertId, node, m.ParameterBytes);
        foreach (var w in replica.Waiting) w.Tell(new ReplicaLoaded(m.ExpertId, node));
        replica.Waiting.Clear();
    }

    void Drop(DropReplica m)
    {
        // Forgotten at once, so later replica items go to the primary; PoisonPill lets the rows already queued at the
        // replica finish first (their answers still come here).
        if (replicas.Remove(m.ExpertId, out var replica))
        {
            Context.Unwatch(replica.Actor);
            replica.Actor.Tell(PoisonPill.Instance);
            log.Info("replica of {0} dropped on {1}", m.ExpertId, node);
        }
        Sender.Tell(new ReplicaDropped(m.ExpertId, node));
    }

    /// <summary>A replica that failed to load (or crashed) is forgotten; its rows fall back to the primary.</summary>
    void Forget(IActorRef actor)
    {
        var id = replicas.FirstOrDefault(r => r.Value.Actor.Equals(actor)).Key;
        if (id is null) return;
        log.Warning("replica of {0} on {1} stopped unexpectedly; its rows go to the primary", id, node);
        replicas.Remove(id);
    }

    /// <summary>A replica that throws while loading (missing tensor) must stop, not restart in a loop.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);
}
