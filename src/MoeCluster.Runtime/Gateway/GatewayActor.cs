using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Routing;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Gateway;

/// <summary>
/// Takes generation jobs and runs continuous batching over the cluster. Each step: plan (admit waiting requests into
/// free KV-cache slots, lay out decode tokens and prefill chunks), embed, then for every layer send the batch to that
/// layer's attention entity and then to its router, and finally apply the LM head, sample and stream tokens back.
/// Requests join and leave only at step boundaries. The queue is bounded: a full queue answers Overloaded.
/// A step that fails or times out is retried from its first layer (KV-cache writes are idempotent); an attention
/// entity that lost its cache makes the affected sequences re-prefill. The gateway holds the embedding, final norm
/// and LM head; everything else lives in the actors it drives.
/// Membership changes are recoveries, not failures: when a node holding experts or attention layers is removed (downed
/// after a crash, or left), the step in flight is parked, the lost entities are started again wherever the allocation
/// strategy re-homes them, and the step is re-run as soon as every one has answered — without counting an attempt. A
/// step that fails while members are unreachable is parked the same way. A parked step waits at most
/// <see cref="RuntimeOptions.StepTimeout"/>; then it counts as a failed attempt, so no request waits forever.
/// </summary>
public sealed class GatewayActor : ReceiveActor, IWithTimers
{
    public const string Name = "gateway";

    sealed class ActiveStep
    {
        public required StepPlan Plan;
        public required long Id;
        public int Attempt = 1;
        public readonly Stopwatch Clock = Stopwatch.StartNew();
        /// <summary>Set while the step waits for the cluster to recover (no attempt of it is running).</summary>
        public Stopwatch? ParkedFor;
        public string? ParkedBecause;
    }


    sealed record RunStep;
    sealed record StepTimedOut(long StepId);
    sealed record WarmUp;
    sealed record CheckRecovery;
    sealed record ProbeMoves;

    /// <summary>Experts being handed off (announced by the allocation strategy or a leaving node): no step starts until
    /// each has answered from a node other than the one it left.</summary>
    sealed class PendingMoves
    {
        public readonly Dictionary<string, string> From = new();
        public readonly List<IActorRef> Unacknowledged = new();
        public readonly Stopwatch Clock = Stopwatch.StartNew();
    }

    /// <summary>Longest pause for a move; after it steps go on and the routers' timeouts cover any stragglers.</summary>
    static readonly TimeSpan MoveTimeout = TimeSpan.FromSeconds(20);

    readonly string gatewayName;
    readonly ModelSource model;
    readonly RuntimeOptions options;
    readonly IActorRef attentionRegion, expertRegion;
    readonly ExpertDirectory directory;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly BatchScheduler scheduler;
    readonly Dictionary<string, IActorRef> clients = new();
    RequestMetricsRecorder? metrics;
    readonly List<GenerationEvent> events = new();
    readonly HashSet<string> attentionReady = new(), expertsReady = new();
    /// <summary>Entity id → the node that answered its Start (so a removed node's entities can be started again).</summary>
    readonly Dictionary<string, string> homes = new();
    readonly Cluster cluster = Cluster.Get(Context.System);
    /// <summary>Latched once <see cref="RuntimeOptions.MinExpertNodes"/> expert nodes were up at the same time: only
    /// then are experts first started, so the first expert node does not receive every expert only to hand most off.</summary>
    bool expertQuorum;
    /// <summary>Expert members seen up, from the membership events (Cluster.State lags the events we receive).</summary>
    readonly HashSet<UniqueAddress> upExperts = new();
    IActorRef[] routers = [];
    Model.Layers.Embedding? embedding;
    RmsNorm? finalNorm;
    Model.Layers.Linear? lmHead;
    ActiveStep? step;
    PendingMoves? moves;
    long nextStepId;
    long kvBytesPerToken;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string gatewayName, ModelSource model, RuntimeOptions options, IActorRef attentionRegion, IActorRef expertRegion, ExpertDirectory directory) =>
        Akka.Actor.Props.Create(() => new GatewayActor(gatewayName, model, options, attentionRegion, expertRegion, directory));

    public GatewayActor(string gatewayName, ModelSource model, RuntimeOptions options, IActorRef attentionRegion, IActorRef expertRegion, ExpertDirectory directory)
    {
        this.gatewayName = gatewayName;
        this.model = model;
        this.options = options;
        this.attentionRegion = attentionRegion;
        this.expertRegion = expertRegion;
        this.directory = directory;
        scheduler = new BatchScheduler(options.Batching, model.Config.VocabSize);
        Receive<SubmitGeneration>(Submit);
        Receive<CancelGeneration>(m => { if (scheduler.Cancel(m.RequestId)) KickOff(); });
        Receive<GetGatewayStatus>(_ => Sender.Tell(Status()));
        Receive<RunStep>(_ => StartStep());
        Receive<AttentionComputed>(OnAttention);
        Receive<AttentionCacheMissing>(OnCacheMissing);
        Receive<FeedForwardComputed>(OnFeedForward);
        Receive<FeedForwardFailed>(m => { if (step?.Id == m.StepId) RetryStep(m.Reason); });
        Receive<StepTimedOut>(m => { if (step?.Id == m.StepId) RetryStep($"step did not finish within {options.StepTimeout.TotalSeconds:0}s"); });
        Receive<AttentionStarted>(m => { attentionReady.Add(m.EntityId); homes[m.EntityId] = m.Node; OnEntityStarted(); });
        Receive<ExpertStarted>(m => { expertsReady.Add(m.ExpertId); homes[m.ExpertId] = m.Node; OnMoved(m); OnEntityStarted(); });
        Receive<PlacementWatcherActor.ExpertsMoving>(OnExpertsMoving);
        Receive<ProbeMoves>(_ => ProbeMovingExperts());
        Receive<WarmUp>(_ => SendWarmUp());
        Receive<CheckRecovery>(_ => TryResume());
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            upExperts.Remove(m.Member.UniqueAddress);
            OnNodeGone(m.Member, graceful: m.PreviousStatus == MemberStatus.Exiting);
        });
        Receive<ClusterEvent.MemberUp>(m =>
        {
            if (m.Member.HasRole(NodeRoles.Expert)) upExperts.Add(m.Member.UniqueAddress);
            CheckQuorum();
            TryResume();
        });
        Receive<ClusterEvent.ReachableMember>(_ => TryResume());
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    int Layers => model.Config.NumLayers;
    string AttentionId(int layer) => AttentionEntity.Id(gatewayName, layer);
    int ExpertCount => model.Config.MoeLayers.Count() * model.Config.NumExperts;

    /// <summary>Every attention layer and expert loaded, and the routers know where each expert lives.</summary>
    bool Ready => AllStarted && directory.Placement.Count >= ExpertCount;

    bool AllStarted => attentionReady.Count == Layers && expertsReady.Count == ExpertCount;

    /// <summary>Members that run our entities and cannot be reached: until the split-brain resolver downs them, their
    /// shards cannot be re-homed, so a failing step is parked rather than counted.</summary>
    bool MembersUnreachable => cluster.State.Unreachable.Any(m => m.HasRole(NodeRoles.Expert) || m.HasRole(NodeRoles.Attention));

    protected override void PreStart()
    {
        var c = model.Config;
        embedding = new Model.Layers.Embedding(c.VocabSize, c.HiddenSize, model.Options);
        finalNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, model.Options);
        model.Load(embedding, "model.embed_tokens.");
        model.Load(finalNorm, "model.norm.");
        if (!c.TieWordEmbeddings)
        {
            lmHead = new Model.Layers.Linear(c.HiddenSize, c.VocabSize, false, model.Options);
            model.Load(lmHead, "lm_head.");
        }
        routers = Enumerable.Range(0, Layers)
            .Select(l => Context.ActorOf(RouterActor.Props(l, model, expertRegion, directory, options.ExpertTimeout), $"router-{l}"))
            .ToArray();
        kvBytesPerToken = 2L * c.NumLayers * c.NumKvHeads * c.HeadDim * (model.Options.DType == ScalarType.Float32 ? 4 : 2);
        metrics = new RequestMetricsRecorder(kvBytesPerToken);
        MoeMetrics.KvCacheCapacityBytes.Set((double)kvBytesPerToken * options.Batching.MaxBatchSize * options.Batching.ContextLength);
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        // Start every attention layer and expert now so weights load before the first request, and again periodically
        // until all answered (nodes may still be joining).
        StartWarmUp();
    }

    void StartWarmUp() => Timers.StartPeriodicTimer("warm-up", new WarmUp(), TimeSpan.Zero, TimeSpan.FromMilliseconds(500));

    void CheckQuorum()
    {
        if (expertQuorum || upExperts.Count < Math.Max(1, options.MinExpertNodes)) return;
        expertQuorum = true;
        Self.Tell(new WarmUp());
        KickOff();
    }

    void SendWarmUp()
    {
        if (AllStarted) { Timers.Cancel("warm-up"); return; }
        for (int l = 0; l < Layers; l++)
            if (!attentionReady.Contains(AttentionId(l)))
                attentionRegion.Tell(new StartAttention(AttentionId(l), options.Batching.MaxBatchSize, options.Batching.ContextLength));
        if (!expertQuorum) return;
        foreach (var l in model.Config.MoeLayers)
            for (int e = 0; e < model.Config.NumExperts; e++)
            {
                var id = new ExpertKey(l, e).EntityId;
                if (!expertsReady.Contains(id)) expertRegion.Tell(new StartExpert(id));
            }
    }

    GatewayStatus Status() => new(Ready, scheduler.Waiting, scheduler.Running, scheduler.CachedTokens, scheduler.CachedTokens * kvBytesPerToken,
        Ready ? "ready"
        : !expertQuorum ? $"waiting for {options.MinExpertNodes} expert nodes to be up ({upExperts.Count} now)"
        : $"{(step?.ParkedFor is not null ? "recovering: " : moves is not null ? "moving experts: " : "warming up: ")}{attentionReady.Count}/{Layers} attention layers, {expertsReady.Count}/{ExpertCount} experts loaded, {directory.Placement.Count}/{ExpertCount} placed");

    void Submit(SubmitGeneration m)
    {
        var r = m.Request;
        try
        {
            if (!scheduler.TryEnqueue(r))
            {
                MoeMetrics.RequestsRejected.WithLabels("overloaded").Inc();
                Sender.Tell(new GenerationRejected(r.Id, RejectionKind.Overloaded, "", $"the gateway queue is full ({options.Batching.MaxQueuedRequests} requests waiting); retry later"));
                return;
            }
        }
        catch (InvalidGenerationRequestException e)
        {
            MoeMetrics.RequestsRejected.WithLabels("invalid").Inc();
            Sender.Tell(new GenerationRejected(r.Id, RejectionKind.Invalid, e.Field, e.Message));
            return;
        }
        clients[r.Id] = Sender;
        metrics?.Arrived(r.Id);
        Sender.Tell(new GenerationAccepted(r.Id));
        UpdateGauges();
        KickOff();
    }

    void KickOff()
    {
        if (step is null) Self.Tell(new RunStep());
    }

    void StartStep()
    {
        // Before the expert quorum, requests wait in the queue: a step would place every expert it touches on the
        // first expert node.
        if (step is not null || !expertQuorum || moves is not null) return;
        events.Clear();
        var plan = scheduler.PlanStep(events);
        Deliver();
        if (plan is null) { UpdateGauges(); return; }
        metrics?.Step(plan);
        step = new ActiveStep { Plan = plan, Id = ++nextStepId };
        RunFromFirstLayer();
    }

    void RunFromFirstLayer()
    {
        var s = step!;
        Timers.StartSingleTimer("step-timeout", new StepTimedOut(s.Id), options.StepTimeout);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var tokens = tensor(s.Plan.Tokens.Select(t => (long)t).ToArray(), ScalarType.Int64, model.Options.Device);
        var x = embedding!.forward(tokens);
        attentionRegion.Tell(new AttentionStep(AttentionId(0), s.Id, s.Plan.Layout, TensorPayload.Own(x)));
    }

    void OnAttention(AttentionComputed m)
    {
        if (step?.Id != m.StepId) { m.Residual.Take().Dispose(); m.Normed.Take().Dispose(); return; }
        routers[m.Layer].Tell(new FeedForwardStep(m.StepId, m.Layer, m.Residual, m.Normed));
    }

    void OnFeedForward(FeedForwardComputed m)
    {
        if (step?.Id != m.StepId) { m.Output.Take().Dispose(); return; }
        if (m.Layer + 1 < Layers)
        {
            attentionRegion.Tell(new AttentionStep(AttentionId(m.Layer + 1), m.StepId, step.Plan.Layout, m.Output));
            return;
        }
        FinishStep(m.Output);
    }

    void FinishStep(TensorPayload output)
    {
        var s = step!;
        Timers.Cancel("step-timeout");
        events.Clear();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var x = output.Take(model.Options.Device);
            var rows = x.index_select(0, tensor(s.Plan.LogitRows(), ScalarType.Int64, x.device));
            var n = finalNorm!.forward(rows);
            var l = lmHead is not null ? lmHead.forward(n) : nn.functional.linear(n, embedding!.weight);
            scheduler.CompleteStep(s.Plan, l.to(ScalarType.Float32), events);
        }
        MoeMetrics.StepSeconds.Observe(s.Clock.Elapsed.TotalSeconds);
        step = null;
        Deliver();
        UpdateGauges();
        AcknowledgeMovesIfIdle();
        KickOff();
    }

    void OnCacheMissing(AttentionCacheMissing m)
    {
        if (step?.Id != m.StepId) return;
        log.Warning("attention layer {0} lost the KV cache of slots [{1}]; re-prefilling those sequences", m.Layer, string.Join(", ", m.Slots));
        MoeMetrics.Recoveries.WithLabels("kv_cache_reprefill").Inc();
        attentionRegion.Tell(new StartAttention(AttentionId(m.Layer), options.Batching.MaxBatchSize, options.Batching.ContextLength));
        scheduler.InvalidateCache(m.Slots);
        Timers.Cancel("step-timeout");
        step = null;
        AcknowledgeMovesIfIdle();
        KickOff();
    }

    /// <summary>A node that may have held some of our entities is gone: start them again (the coordinator re-homes the
    /// shards of the gone node on the survivors, each loading its weights) and re-run the step in flight once all have
    /// answered; its answers from the gone node will never come, so waiting for the router's timeouts would only add
    /// delay. Every entity of the node's roles is asked again, not only those that first started there: rebalancing
    /// moves experts without telling us. A node that left gracefully handed its shards off first: nothing was lost, so
    /// the step in flight goes on and the entities are only asked where they live now.</summary>
    void OnNodeGone(Member member, bool graceful)
    {
        var node = member.Address.ToString();
        var ask = homes.Where(h => h.Value == node).Select(h => h.Key).ToHashSet();
        if (member.HasRole(NodeRoles.Expert)) ask.UnionWith(expertsReady);
        if (member.HasRole(NodeRoles.Attention)) ask.UnionWith(attentionReady);
        if (ask.Count == 0) return;
        log.Warning("node {0} {1}; confirming where its entities live now ({2} to ask)", node, graceful ? "left" : "was downed and removed", ask.Count);
        MoeMetrics.Recoveries.WithLabels(graceful ? "node_left" : "node_removed").Inc();
        foreach (var id in ask) { homes.Remove(id); expertsReady.Remove(id); attentionReady.Remove(id); }
        StartWarmUp();
        if (!graceful && step is { ParkedFor: null } s) Park(s, $"node {node} was downed and removed");
    }

    /// <summary>Abandons the running attempt (its answers become stale) and waits for the cluster to recover.</summary>
    void Park(ActiveStep s, string reason)
    {
        log.Warning("step parked until the cluster recovers: {0}", reason);
        Timers.Cancel("step-timeout");
        s.Id = ++nextStepId;
        s.ParkedFor = Stopwatch.StartNew();
        s.ParkedBecause = reason;
        Timers.StartPeriodicTimer("recovery-check", new CheckRecovery(), TimeSpan.FromMilliseconds(200));
        AcknowledgeMovesIfIdle();
        TryResume();
    }

    void OnExpertsMoving(PlacementWatcherActor.ExpertsMoving m)
    {
        moves ??= new PendingMoves();
        foreach (var (id, from) in m.From) moves.From[id] = from;
        moves.Unacknowledged.Add(Sender);
        log.Info("experts {0} are moving; pausing expert work until they answer from their new homes", string.Join(", ", m.From.Keys));
        Timers.StartPeriodicTimer("move-probe", new ProbeMoves(), TimeSpan.FromMilliseconds(250));
        AcknowledgeMovesIfIdle();
    }

    /// <summary>Acknowledged once no attempt of a step is running, so nothing of ours is in flight during the hand-off.</summary>
    void AcknowledgeMovesIfIdle()
    {
        if (moves is null || step is { ParkedFor: null }) return;
        foreach (var a in moves.Unacknowledged) a.Tell(new PlacementWatcherActor.ExpertsMovingAcknowledged());
        moves.Unacknowledged.Clear();
    }

    void ProbeMovingExperts()
    {
        if (moves is null) { Timers.Cancel("move-probe"); return; }
        if (moves.Clock.Elapsed > MoveTimeout)
        {
            log.Warning("experts {0} did not answer from a new home within {1:0}s; going on", string.Join(", ", moves.From.Keys), MoveTimeout.TotalSeconds);
            EndMoves();
            return;
        }
        if (moves.Unacknowledged.Count > 0) return;
        foreach (var id in moves.From.Keys) expertRegion.Tell(new StartExpert(id));
    }

    void OnMoved(ExpertStarted m)
    {
        if (moves is null || moves.Unacknowledged.Count > 0 || !moves.From.TryGetValue(m.ExpertId, out var from) || m.Node == from) return;
        moves.From.Remove(m.ExpertId);
        if (moves.From.Count > 0) return;
        log.Info("experts moved in {0:0.00}s; resuming", moves.Clock.Elapsed.TotalSeconds);
        EndMoves();
    }

    void EndMoves()
    {
        AcknowledgeMovesIfIdle();
        moves = null;
        Timers.Cancel("move-probe");
        KickOff();
    }

    void TryResume()
    {
        if (step is not { ParkedFor: not null } s) return;
        if (AllStarted && !MembersUnreachable)
        {
            log.Info("cluster recovered after {0:0.0}s; re-running the parked step", s.ParkedFor.Elapsed.TotalSeconds);
            MoeMetrics.StepRetries.WithLabels("recovered").Inc();
            s.ParkedFor = null;
            Timers.Cancel("recovery-check");
            s.Id = ++nextStepId;
            RunFromFirstLayer();
            return;
        }
        if (s.ParkedFor.Elapsed < options.StepTimeout) return;
        // The cluster did not recover in time: this counts as a failed attempt, and a new wait begins (or the requests fail).
        var reason = $"{s.ParkedBecause}, and the cluster did not recover within {options.StepTimeout.TotalSeconds:0}s";
        s.ParkedFor = null;
        Timers.Cancel("recovery-check");
        RetryStep(reason, parkable: false);
    }

    void OnEntityStarted()
    {
        if (AllStarted) Timers.Cancel("warm-up");
        TryResume();
    }

    void RetryStep(string reason, bool parkable = true)
    {
        var s = step!;
        if (parkable && (MembersUnreachable || !AllStarted))
        {   // the cluster is changing: this failure says nothing about the step itself
            Park(s, reason);
            return;
        }
        if (s.Attempt >= options.MaxStepAttempts)
        {
            log.Error("step failed {0} times ({1}); failing the {2} running requests", s.Attempt, reason, scheduler.Running);
            Timers.Cancel("step-timeout");
            events.Clear();
            scheduler.FailRunning($"generation step failed after {s.Attempt} attempts: {reason}", events);
            step = null;
            Deliver();
            UpdateGauges();
            AcknowledgeMovesIfIdle();
            KickOff();
            return;
        }
        log.Warning("retrying step (attempt {0}): {1}", s.Attempt + 1, reason);
        MoeMetrics.StepRetries.WithLabels(reason.Contains("did not finish") ? "timeout" : "failure").Inc();
        s.Attempt++;
        if (parkable || AllStarted && !MembersUnreachable)
        {
            s.Id = ++nextStepId;   // answers to the abandoned attempt are recognised as stale
            RunFromFirstLayer();
        }
        else Park(s, reason);
    }

    void Deliver()
    {
        foreach (var e in events)
        {
            if (!clients.TryGetValue(e.RequestId, out var subscriber)) continue;
            metrics?.Observe(e);
            if (e is SequenceFinished) clients.Remove(e.RequestId);
            subscriber.Tell(e);
        }
        events.Clear();
    }

    void UpdateGauges() => metrics?.Gauges(scheduler);

    protected override void PostStop()
    {
        cluster.Unsubscribe(Self);
        events.Clear();
        scheduler.FailRunning("the gateway stopped", events);
        Deliver();
        embedding?.Dispose(); finalNorm?.Dispose(); lmHead?.Dispose();
    }
}
