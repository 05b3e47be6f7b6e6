using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using TorchSharp;
using static TorchSharp.torch;
using HostRows = MoeCluster.Model.Kernels.ExpertRows;

namespace MoeCluster.Runtime.Experts;

/// <summary>One per expert node, at /user/expert-host. Receives a router's per-node batch (<see cref="DispatchTokens"/>:
/// the node's distinct token rows once, and each expert's share of them), hands each item's rows to its expert — the sharding entity through the node's shard region (local delivery, tensors not
/// copied), or, for items marked <c>Replica</c>, this node's redundant replica of a hot expert — gathers the outputs
/// and answers with one <see cref="TokensComputed"/> — for a combining batch one row per token, Σ gate × output, so a
/// token whose experts share this node costs one row back, not k. If an expert has moved away, the region forwards the item to its
/// new home; a replica item whose replica is gone goes to the primary the same way. An expert that fails, or a batch
/// that names a layer or expert the model does not have, is answered with <see cref="DispatchFailed"/> at once. A call
/// still unanswered after twice the expert timeout (the router has given up on it by then) is answered the same way and
/// forgotten, so the in-flight table holds only calls somebody waits for.
///
/// Redundant replicas are plain children (<c>replica-L{l}.E{e}</c>, an <see cref="ExpertActor"/> each) loaded on the
/// replication coordinator's <see cref="LoadReplica"/> and stopped on <see cref="DropReplica"/>.</summary>
public sealed class ExpertHostActor : ReceiveActor, IWithTimers
{
    public const string Name = "expert-host";
    public const string ReplicaPrefix = "replica-";

    sealed class Pending(IActorRef router, DispatchTokens request)
    {
        public IActorRef Router { get; } = router;
        public DispatchTokens Request { get; } = request;
        /// <summary>The batch's distinct rows and the hidden size, for the combined answer.</summary>
        public readonly long RowCount = request.Rows.Shape[0], Hidden = request.Rows.Shape[1];
        public readonly ExpertInput?[] Outputs = new ExpertInput?[request.Items.Count];
        public readonly long[] Correlations = new long[request.Items.Count];
        public int Remaining = request.Items.Count;
        public readonly DateTime Since = DateTime.UtcNow;
    }

    sealed record Evict;

    /// <summary>A replica child: who waits for it to finish loading (answered together once it has).</summary>
    sealed class Replica(IActorRef actor)
    {
        public IActorRef Actor { get; } = actor;
        public bool Loaded;
        public readonly List<IActorRef> Waiting = new();
    }

    readonly IActorRef expertRegion;
    readonly ModelSource model;
    readonly ExpertLoader loader;
    readonly TimeSpan expertTimeout;
    readonly FaultInjector? faults;
    readonly Dictionary<long, (Pending pending, int index)> inFlight = new();
    readonly Dictionary<string, Replica> replicas = new();
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly string node;
    long nextCorrelation;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef expertRegion, ModelSource model, TimeSpan expertTimeout, FaultInjector? faults = null, ExpertLoader? loader = null) =>
        Akka.Actor.Props.Create(() => new ExpertHostActor(expertRegion, model, expertTimeout, faults, loader));

    public ExpertHostActor(IActorRef expertRegion, ModelSource model, TimeSpan expertTimeout, FaultInjector? faults, ExpertLoader? loader)
    {
        this.expertRegion = expertRegion;
        this.model = model;
        this.loader = loader ?? new ExpertLoader(model);
        this.expertTimeout = expertTimeout;
        this.faults = faults;
        node = Cluster.Get(Context.System).SelfAddress.ToString();
        Receive<DispatchTokens>(Dispatch);
        Receive<PrefetchExperts>(m =>
        {
            if (this.loader.Resident is not { } resident || m.Layer < 0 || m.Layer >= model.Config.NumLayers || !model.Config.IsMoeLayer(m.Layer)) return;
            foreach (var e in m.Experts.Where(e => e >= 0 && e < model.Config.NumExperts)) resident.Prefetch(new ExpertKey(m.Layer, e));
        });
        Receive<ExpertComputed>(Collect);
        Receive<ExpertFailed>(OnExpertFailed);
        Receive<Evict>(_ => EvictAbandoned());
        Receive<LoadReplica>(Load);
        Receive<ExpertStarted>(Loaded);
        Receive<DropReplica>(Drop);
        Receive<GetHostedReplicas>(_ => Sender.Tell(new HostedReplicas(node, replicas.Where(r => r.Value.Loaded).Select(r => r.Key).ToArray())));
        Receive<Terminated>(m => Forget(m.ActorRef));
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("evict", new Evict(), expertTimeout, expertTimeout);

    void Dispatch(DispatchTokens m)
    {
        var c = model.Config;
        var bad = Enumerable.Range(0, m.Items.Count).Where(i => m.Items[i].Expert < 0 || m.Items[i].Expert >= c.NumExperts).ToArray();
        string? wrong = m.Layer < 0 || m.Layer >= c.NumLayers || !c.IsMoeLayer(m.Layer) ? $"layer {m.Layer} is not a MoE layer of this model"
            : bad.Length > 0 ? $"layer {m.Layer} has no expert {m.Items[bad[0]].Expert}"
            : m.Rows.Shape.Length != 2 ? $"rows [{string.Join(", ", m.Rows.Shape)}] are not [tokens, hidden]"
            : m.Items.Select(Malformed).FirstOrDefault(w => w is not null);
        string? Malformed(ExpertRows item) =>
            item.Rows.Any(r => r < 0 || r >= m.Rows.Shape[0]) ? $"expert {item.Expert} is given rows outside the batch's {m.Rows.Shape[0]}"
            : m.Combine && item.Gates?.Length != item.Rows.Length ? $"expert {item.Expert} has {item.Gates?.Length ?? 0} gate weights for {item.Rows.Length} rows"
            : null;
        if (wrong is not null)
        {
            m.Rows.Take().Dispose();
            MoeMetrics.FrameRejected(FrameRejection.Inconsistent);
            Sender.Tell(new DispatchFailed(m.DispatchId, m.Layer, bad.Length > 0 ? bad : Enumerable.Range(0, m.Items.Count).ToArray(), $"{node} refused the batch: {wrong}"));
            return;
        }
        try { faults?.ThrowIfArmed(FaultSite.ExpertHost, node); }
        catch (InjectedFaultException e)
        {
            m.Rows.Take().Dispose();
            Sender.Tell(new DispatchFailed(m.DispatchId, m.Layer, Enumerable.Range(0, m.Items.Count).ToArray(), $"{node}: {e.Message}"));
            return;
        }
        var pending = new Pending(Sender, m);
        using (var scope = NewDisposeScope())
        {
            var rows = m.Rows.Take(model.Options);
            for (int i = 0; i < m.Items.Count; i++)
            {
                long correlation = ++nextCorrelation;
                inFlight[correlation] = (pending, i);
                MoeMetrics.ExpertHostInFlight.Set(inFlight.Count);
                pending.Correlations[i] = correlation;
                var item = m.Items[i];
                var id = new ExpertKey(m.Layer, item.Expert).EntityId;
                // Each expert gets its own rows of the batch (a local message: the tensor moves, it is not copied again).
                var mine = item.Rows.Length == pending.RowCount ? rows.alias()
                    : OnHost(rows) ? HostRows.Gather(rows, Longs(item.Rows)) : rows.index_select(0, Indices(item.Rows));
                var message = new ComputeExpert(id, correlation, TensorPayload.Own(mine));
                if (item.Replica && replicas.TryGetValue(id, out var replica) && replica.Loaded)
                {
                    MoeMetrics.ReplicaTokens.WithLabels(node).Inc(item.Rows.Length);
                    replica.Actor.Tell(message);
                }
                else expertRegion.Tell(message);   // the primary, wherever it lives
            }
        }
        if (m.Items.Count == 0) Answer(pending);
    }

    Tensor Indices(int[] rows) => tensor(Longs(rows), ScalarType.Int64, model.Options.Device);

    static long[] Longs(int[] rows) => Array.ConvertAll(rows, r => (long)r);

    /// <summary>float32 rows on the CPU: gathered and combined row by row on the host (<see cref="HostRows"/>, bit for
    /// bit libtorch's index_select and y · w then index_add_), without the index tensors and the half-dozen
    /// TorchSharp calls per expert that cost more than the arithmetic of a decode step's few rows (2.5 ms a layer at
    /// 32 sequences). Other dtypes keep the TorchSharp ops: the gate weights would first need rounding to the dtype.</summary>
    internal static bool OnHost(Tensor x) => x.dtype == ScalarType.Float32 && x.device_type == DeviceType.CPU && x.dim() == 2;

    void Collect(ExpertComputed m)
    {
        bool known = inFlight.Remove(m.CorrelationId, out var entry);
        MoeMetrics.ExpertHostInFlight.Set(inFlight.Count);
        if (!known)
        {   // a late answer for a dispatch the router already gave up on
            m.Output.Take().Dispose();
            return;
        }
        var (pending, index) = entry;
        var item = pending.Request.Items[index];
        pending.Outputs[index] = new ExpertInput(item.Expert, m.Output, item.Replica);
        if (--pending.Remaining > 0) return;
        Answer(pending);
    }

    /// <summary>Every item computed: the outputs as they are, or, for a combining batch, Σ gate × output per row in item
    /// order — the same operations, in the same order, as the single-process combine for these experts.</summary>
    void Answer(Pending p)
    {
        var request = p.Request;
        if (!request.Combine)
        {
            p.Router.Tell(new TokensComputed(request.DispatchId, request.Layer, p.Outputs!));
            return;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var sum = zeros([p.RowCount, p.Hidden], model.Options.DType, model.Options.Device);
        for (int i = 0; i < request.Items.Count; i++)
        {
            var item = request.Items[i];
            var y = p.Outputs[i]!.Rows.Take(model.Options);
            if (OnHost(sum) && y.dtype == sum.dtype && y.device_type == DeviceType.CPU)
            {
                HostRows.Accumulate(sum, Longs(item.Rows), item.Gates!, y);
                continue;
            }
            var gates = tensor(item.Gates!, ScalarType.Float32, model.Options.Device).to(y.dtype).unsqueeze(1);
            sum.index_add_(0, Indices(item.Rows), y * gates, 1);
        }
        p.Router.Tell(new TokensComputed(request.DispatchId, request.Layer, [], TensorPayload.Own(sum)));
    }

    /// <summary>One item failed: the router hears at once, and the call's other items are forgotten (their answers,
    /// when they come, are released).</summary>
    void OnExpertFailed(ExpertFailed m)
    {
        if (!inFlight.TryGetValue(m.CorrelationId, out var entry)) return;
        var (pending, index) = entry;
        Abandon(pending);
        pending.Router.Tell(new DispatchFailed(pending.Request.DispatchId, pending.Request.Layer, [index], m.Reason));
    }

    /// <summary>Calls older than twice the expert timeout: the router re-sent their rows through the shard region after
    /// one timeout and failed the step after two, so nobody waits for them any more.</summary>
    void EvictAbandoned()
    {
        var cutoff = DateTime.UtcNow - 2 * expertTimeout;
        var old = inFlight.Values.Select(e => e.pending).Where(p => p.Since < cutoff).Distinct().ToList();
        foreach (var p in old)
        {
            var unanswered = Enumerable.Range(0, p.Outputs.Length).Where(i => p.Outputs[i] is null).ToArray();
            Abandon(p);
            p.Router.Tell(new DispatchFailed(p.Request.DispatchId, p.Request.Layer, unanswered,
                $"{node}: experts did not answer within {2 * expertTimeout.TotalSeconds:0.#}s"));
        }
        if (old.Count > 0) log.Warning("forgot {0} expert calls unanswered for {1:0.#}s", old.Count, 2 * expertTimeout.TotalSeconds);
        MoeMetrics.ExpertHostInFlight.Set(inFlight.Count);
    }

    void Abandon(Pending p)
    {
        foreach (var c in p.Correlations) inFlight.Remove(c);
        MoeMetrics.ExpertHostInFlight.Set(inFlight.Count);
        foreach (var o in p.Outputs) o?.Rows.Take().Dispose();
        Array.Clear(p.Outputs);
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
        // On the host's own dispatcher, as the primaries are (the token path's, when hosted).
        var child = Context.ActorOf(ExpertActor.Props(m.ExpertId, model, faults, loader).WithDispatcher(Context.Props.Dispatcher), ReplicaPrefix + m.ExpertId);
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
