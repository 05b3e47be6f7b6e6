using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Routing;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Gateway;

/// <summary>
/// Takes generation jobs and runs continuous batching over the cluster. Each step: plan (admit waiting requests into
/// free KV-cache slots, lay out decode tokens and prefill chunks), embed, then for every layer send the batch to that
/// layer's attention entity and then to its router, and finally apply the LM head, sample and stream tokens back.
/// Requests join and leave only at step boundaries. The queue is bounded: a full queue answers Overloaded. The gateway
/// holds the embedding, final norm and LM head; everything else lives in the actors it drives.
///
/// <para>Its states (<c>Become</c>), by what it waits for:</para>
/// <list type="bullet">
/// <item><b>Idle</b> — for work (or for the expert quorum).</item>
/// <item><b>Stepping</b> — for the layers of the step in flight. A failure answered by any actor on the token path, or
/// the step timeout, goes to <see cref="StepRecovery"/>: retry from the first layer, park, or fail only the sequences
/// concerned. An attention entity that lost its cache makes the affected sequences re-prefill.</item>
/// <item><b>Parked</b> — for the cluster to recover: a node holding our entities was downed and removed (or a step
/// failed while members were unreachable); the lost entities are started again wherever the allocation strategy
/// re-homes them and the step re-runs once all have answered, without counting an attempt. A parked step waits at most
/// <see cref="RuntimeOptions.StepTimeout"/>, then it counts as a failed attempt, so no request waits forever.</item>
/// <item><b>Paused for moves</b> — for experts being handed off to answer from their new homes (<see cref="MoveBarrier"/>).</item>
/// </list>
/// <para>Orthogonal to these, what it admits: everything (<b>open</b>), or nothing while it <b>drains</b> for a shutdown
/// (<see cref="DrainGateway"/>), and nothing once <b>drained</b>. Every transition goes through <see cref="Go"/>, which
/// layers the admission behaviour over the step state.</para>
/// </summary>
public sealed class GatewayActor : ReceiveActor, IWithTimers
{
    public const string Name = "gateway";

    enum Phase { Idle, Stepping, Parked, PausedForMoves }

    sealed record RunStep;
    sealed record StepTimedOut(long AttemptId);
    sealed record WarmUp;
    sealed record CheckRecovery;
    sealed record ProbeMoves;
    sealed record DrainGraceEnded;
    /// <summary>Sent when the gateway went idle with nothing to run: a draining gateway is then drained.</summary>
    sealed record CheckDrained;

    /// <summary>A drain in progress: who waits for it, and the finish counters when it began.</summary>
    sealed record Drain(List<IActorRef> ReplyTo, long FinishedBefore, long FailedBefore, long RefusedBefore);

    const string StepTimer = "step-timeout", RecoveryTimer = "recovery-check", ProbeTimer = "move-probe", WarmUpTimer = "warm-up", DrainTimer = "drain-grace";

    readonly ModelSource model;
    readonly RuntimeOptions options;
    readonly IActorRef attentionRegion, expertRegion;
    readonly ExpertDirectory directory;
    readonly FaultInjector? faults;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly BatchScheduler scheduler;
    readonly EntityRoster roster;
    readonly MoveBarrier barrier = new();
    readonly StepRecovery recovery;
    readonly Dictionary<string, IActorRef> clients = new();
    readonly List<GenerationEvent> events = new();
    readonly Cluster cluster = Cluster.Get(Context.System);
    RequestMetricsRecorder metrics = null!;
    IActorRef[] routers = [];
    IActorRef? statistics;
    Model.Layers.Embedding? embedding;
    OutputHead? head;
    long nextAttemptId;
    long kvBytesPerToken;
    /// <summary>Requests that ended normally / with an error / were handed back since the gateway started (a drain reports its share).</summary>
    long finished, failed, refused;
    Phase phase;
    Action stepState, admission;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string gatewayName, ModelSource model, RuntimeOptions options, IActorRef attentionRegion, IActorRef expertRegion, ExpertDirectory directory) =>
        Akka.Actor.Props.Create(() => new GatewayActor(gatewayName, model, options, attentionRegion, expertRegion, directory));

    public GatewayActor(string gatewayName, ModelSource model, RuntimeOptions options, IActorRef attentionRegion, IActorRef expertRegion, ExpertDirectory directory)
    {
        this.model = model;
        this.options = options;
        this.attentionRegion = attentionRegion;
        this.expertRegion = expertRegion;
        this.directory = directory;
        faults = options.Faults;
        scheduler = new BatchScheduler(options.Batching, model.Config.VocabSize);
        roster = new EntityRoster(model.Config, gatewayName, options.MinExpertNodes);
        recovery = new StepRecovery(options.MaxStepAttempts);
        admission = Open;
        stepState = Idle;
        Go(Phase.Idle, Idle);
    }

    int Layers => model.Config.NumLayers;

    /// <summary>Every attention layer and expert loaded, and the routers know where each expert lives.</summary>
    bool Ready => roster.AllStarted && directory.Placement.Count >= roster.ExpertCount;

    /// <summary>Members that run our entities and cannot be reached: until the split-brain resolver downs them, their
    /// shards cannot be re-homed, so a step that fails meanwhile is parked rather than counted.</summary>
    bool MembersUnreachable => cluster.State.Unreachable.Any(m => m.HasRole(NodeRoles.Expert) || m.HasRole(NodeRoles.Attention));

    bool ClusterChanging => MembersUnreachable || !roster.AllStarted;

    // ---- transitions ------------------------------------------------------------------------------------------------

    void Go(Phase next, Action state)
    {
        phase = next;
        stepState = state;
        Become(() => { admission(); state(); Common(); });
    }

    void Admit(Action next)
    {
        admission = next;
        Go(phase, stepState);
    }

    // ---- admission states -------------------------------------------------------------------------------------------

    void Open()
    {
        Receive<SubmitGeneration>(Submit);
        Receive<DrainGateway>(BeginDrain);
    }

    void Draining(Drain drain)
    {
        Receive<SubmitGeneration>(Refuse);
        Receive<DrainGateway>(_ => drain.ReplyTo.Add(Sender));
        Receive<DrainGraceEnded>(_ => EndGrace());
        Receive<CheckDrained>(_ => { if (scheduler.IsIdle) CompleteDrain(drain); });
    }

    void Drained(GatewayDrained result)
    {
        Receive<SubmitGeneration>(Refuse);
        Receive<DrainGateway>(_ => Sender.Tell(result));
    }

    // ---- step states ------------------------------------------------------------------------------------------------

    void Idle()
    {
        Receive<RunStep>(_ => TryStartStep());
        Receive<PlacementWatcherActor.ExpertsMoving>(m =>
        {
            Announced(m);
            barrier.Acknowledge();
            Go(Phase.PausedForMoves, PausedForMoves);
        });
    }

    void Stepping(ActiveStep step)
    {
        bool Current(long id) => id == step.AttemptId;
        Receive<AttentionComputed>(m => Current(m.StepId), m =>
        {
            if (m.Layer == step.Layer) routers[m.Layer].Tell(new FeedForwardStep(m.StepId, m.Residual, m.Normed));
            else WrongLayer(step, m.Layer, () => { m.Residual.Take().Dispose(); m.Normed.Take().Dispose(); });
        });
        Receive<FeedForwardComputed>(m => Current(m.StepId), m =>
        {
            if (m.Layer == step.Layer) NextLayer(step, m);
            else WrongLayer(step, m.Layer, () => m.Output.Take().Dispose());
        });
        Receive<AttentionCacheMissing>(m => Current(m.StepId), m => Reprefill(m));
        Receive<AttentionFailed>(m => Current(m.StepId), m => Failed(step, new StepFailure(StepFailureCause.Fault, $"attention layer {m.Layer}: {m.Reason}")));
        Receive<FeedForwardFailed>(m => Current(m.StepId), m => Failed(step, m.Failure));
        Receive<StepTimedOut>(m => Current(m.AttemptId), _ =>
            Failed(step, new StepFailure(StepFailureCause.Timeout, $"the step did not finish within {options.StepTimeout.TotalSeconds:0}s")));
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            // Its answers from a node that was downed will never come: waiting for the timeouts would only add delay.
            if (NodeGone(m) && m.PreviousStatus != MemberStatus.Exiting) Park(step, $"node {m.Member.Address} was downed and removed");
        });
        Receive<PlacementWatcherActor.ExpertsMoving>(Announced);   // acknowledged when the step ends
    }

    void Parked(ActiveStep step, string reason, DateTime since)
    {
        Receive<CheckRecovery>(_ => TryResume(step, reason, since));
        Receive<ClusterEvent.ReachableMember>(_ => TryResume(step, reason, since));
        Receive<ClusterEvent.MemberUp>(m => { MemberUp(m); TryResume(step, reason, since); });
        Receive<AttentionStarted>(m => { roster.Started(m); TryResume(step, reason, since); });
        Receive<ExpertStarted>(m => { ExpertStarted(m); TryResume(step, reason, since); });
    }

    void PausedForMoves()
    {
        Receive<ExpertStarted>(m =>
        {
            roster.Started(m);
            if (!barrier.Arrived(m)) return;
            log.Info("experts moved in {0:0.00}s; resuming", barrier.Elapsed.TotalSeconds);
            EndPause();
        });
        Receive<ProbeMoves>(_ =>
        {
            if (!barrier.TimedOut) { barrier.Probe(expertRegion); return; }
            log.Warning("experts {0} did not answer from a new home within {1:0}s; going on", string.Join(", ", barrier.Moving), MoveBarrier.Timeout.TotalSeconds);
            EndPause();
        });
        Receive<PlacementWatcherActor.ExpertsMoving>(m => { Announced(m); barrier.Acknowledge(); });
    }

    /// <summary>What every state handles alike, registered last so a state's own handlers come first.</summary>
    void Common()
    {
        Receive<GetGatewayStatus>(_ => Sender.Tell(Status()));
        Receive<CancelGeneration>(m => { if (scheduler.Cancel(m.RequestId)) Self.Tell(new RunStep()); });
        Receive<AttentionStarted>(m => roster.Started(m));
        Receive<ExpertStarted>(ExpertStarted);
        Receive<WarmUp>(_ => SendWarmUp());
        Receive<ClusterEvent.MemberUp>(MemberUp);
        Receive<ClusterEvent.MemberRemoved>(m => NodeGone(m));
        Receive<PlacementWatcherActor.ExpertsMoving>(m => { Announced(m); barrier.Acknowledge(); });
        Receive<ProbeMoves>(_ =>
        {
            if (!barrier.Active) { Timers.Cancel(ProbeTimer); return; }
            if (barrier.TimedOut) { barrier.Lift(); Timers.Cancel(ProbeTimer); Self.Tell(new RunStep()); }
            else barrier.Probe(expertRegion);
        });
        // Answers to attempts that were abandoned: release their tensors.
        Receive<AttentionComputed>(m => { m.Residual.Take().Dispose(); m.Normed.Take().Dispose(); });
        Receive<FeedForwardComputed>(m => m.Output.Take().Dispose());
        Receive<AttentionCacheMissing>(_ => { });
        Receive<AttentionFailed>(_ => { });
        Receive<FeedForwardFailed>(_ => { });
        Receive<StepTimedOut>(_ => { });
        Receive<CheckRecovery>(_ => Timers.Cancel(RecoveryTimer));
        Receive<RunStep>(_ => { });
        Receive<CheckDrained>(_ => { });
        Receive<DrainGraceEnded>(_ => { });
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    // ---- lifecycle --------------------------------------------------------------------------------------------------

    protected override void PreStart()
    {
        var c = model.Config;
        embedding = new Model.Layers.Embedding(c.VocabSize, c.HiddenSize, model.Options);
        head = new OutputHead(c, model.Options, embedding);
        model.Load(embedding, WeightNames.EmbeddingPrefix);
        model.Load(head, WeightNames.HeadTensor);
        statistics = options.RoutingStatistics && c.MoeLayers.Any()
            ? Context.ActorOf(RoutingStatisticsActor.Props(c, directory, options.RoutingWindowSteps), RoutingStatisticsActor.Name) : null;
        routers = Enumerable.Range(0, Layers)
            // The routers are the token path too: on the gateway's own dispatcher (the token path's, when hosted).
            .Select(l => Context.ActorOf(RouterActor.Props(l, model, expertRegion, directory, options.ExpertTimeout, faults, statistics, options.ExpertLookahead)
                .WithDispatcher(Context.Props.Dispatcher), $"router-{l}"))
            .ToArray();
        kvBytesPerToken = 2L * c.NumLayers * c.NumKvHeads * c.HeadDim * (model.Options.DType == ScalarType.Float32 ? 4 : 2);
        metrics = new RequestMetricsRecorder(kvBytesPerToken);
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        // Start every attention layer and expert now so weights load before the first request, and again periodically
        // until all answered (nodes may still be joining).
        StartWarmUp();
    }

    /// <summary>Stop, restart or crash: every request still held gets its terminal answer.</summary>
    protected override void PostStop()
    {
        cluster.Unsubscribe(Self);
        events.Clear();
        HandBack(scheduler.ReleaseWaiting("the gateway stopped while this preempted request waited to resume", events),
            "the gateway stopped before it started this request; send it to another gateway");
        HandBack(scheduler.ReleaseRunning("the gateway stopped while this request was running", events),
            "the gateway stopped before this request produced anything; send it to another gateway");
        UpdateGauges();
        embedding?.Dispose(); head?.Dispose();
    }

    // ---- admission --------------------------------------------------------------------------------------------------

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
        metrics.Arrived(r.Id);
        Sender.Tell(new GenerationAccepted(r.Id));
        UpdateGauges();
        Self.Tell(new RunStep());
    }

    void Refuse(SubmitGeneration m)
    {
        MoeMetrics.RequestsRejected.WithLabels("draining").Inc();
        Sender.Tell(new GenerationRejected(m.Request.Id, RejectionKind.Draining, "", "the gateway is draining (its node is shutting down); send the request to another gateway"));
    }

    /// <summary>What a release of the scheduler (<see cref="BatchScheduler.ReleaseWaiting"/>, <see cref="BatchScheduler.ReleaseRunning"/>)
    /// returned: requests nothing was streamed for are refused as <see cref="RejectionKind.Draining"/> (their clients
    /// resend them to another gateway, as they would a request refused at the door); the errors of those that had
    /// streamed, which the release put in <see cref="events"/>, are delivered. Returns how many were refused.</summary>
    int HandBack(IReadOnlyList<string> unreported, string refusal)
    {
        long before = refused;
        foreach (var id in unreported)
        {
            if (!clients.Remove(id, out var client)) continue;
            metrics.Forget(id);
            refused++;
            MoeMetrics.RequestsRejected.WithLabels("draining").Inc();
            client.Tell(new GenerationRejected(id, RejectionKind.Draining, "", refusal));
        }
        Deliver();
        return (int)(refused - before);
    }

    void BeginDrain(DrainGateway m)
    {
        var drain = new Drain([Sender], finished, failed, refused);
        events.Clear();
        int handedBack = HandBack(scheduler.ReleaseWaiting("the gateway is draining (its node is shutting down) and will not resume this preempted request", events),
            "the gateway is draining (its node is shutting down) and did not start this request; send it to another gateway");
        log.Info("draining: {0} queued requests handed back to their clients, {1} running get {2:0.#}s to finish", handedBack, scheduler.Running, m.Grace.TotalSeconds);
        UpdateGauges();
        Timers.StartSingleTimer(DrainTimer, new DrainGraceEnded(), m.Grace);
        Admit(() => Draining(drain));
        Self.Tell(new CheckDrained());
    }

    /// <summary>The grace is over: what still runs ends with an error (or, if it streamed nothing yet, is handed back to
    /// be resent elsewhere), and a step in flight is abandoned.</summary>
    void EndGrace()
    {
        if (scheduler.Running > 0) log.Warning("drain grace ended; ending the {0} sequences still running", scheduler.Running);
        Timers.Cancel(StepTimer);
        Timers.Cancel(RecoveryTimer);
        events.Clear();
        HandBack(scheduler.ReleaseRunning("the gateway is shutting down and the sequence did not finish within the drain grace", events),
            "the gateway is shutting down and this request produced nothing within the drain grace; send it to another gateway");
        UpdateGauges();
        barrier.Acknowledge();
        Go(Phase.Idle, Idle);
        Self.Tell(new CheckDrained());
    }

    void CompleteDrain(Drain drain)
    {
        var result = new GatewayDrained((int)(finished - drain.FinishedBefore), (int)(failed - drain.FailedBefore), (int)(refused - drain.RefusedBefore));
        Timers.Cancel(DrainTimer);
        log.Info("drained: {0} sequences finished, {1} requests answered with an error, {2} handed back", result.Finished, result.Failed, result.Refused);
        foreach (var a in drain.ReplyTo) a.Tell(result);
        Admit(() => Drained(result));
    }

    // ---- the step ---------------------------------------------------------------------------------------------------

    void TryStartStep()
    {
        // Before the expert quorum, requests wait in the queue: a step would place every expert it touches on the
        // first expert node.
        if (!roster.Quorum) return;
        if (barrier.Active) { Go(Phase.PausedForMoves, PausedForMoves); return; }
        events.Clear();
        var plan = scheduler.PlanStep(events);
        Deliver();
        UpdateGauges();
        if (plan is null) { Self.Tell(new CheckDrained()); return; }
        metrics.Step(plan);
        Run(new ActiveStep(plan));
    }

    /// <summary>Starts an attempt of the step from its first layer.</summary>
    void Run(ActiveStep step)
    {
        step.Begin(++nextAttemptId);
        Timers.StartSingleTimer(StepTimer, new StepTimedOut(step.AttemptId), options.StepTimeout);
        Go(Phase.Stepping, () => Stepping(step));
        TensorPayload input;
        try { input = Embed(step.Plan); }
        catch (Exception e)
        {
            Failed(step, new StepFailure(StepFailureCause.Fault, $"gateway, embedding the step: {e.Message}"));
            return;
        }
        attentionRegion.Tell(new AttentionStep(roster.AttentionId(0), step.AttemptId, step.Plan.Layout, input) { Copies = step.Plan.Copies });
    }

    TensorPayload Embed(StepPlan plan)
    {
        faults?.ThrowIfArmed(FaultSite.Gateway, Name);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return TensorPayload.Own(embedding!.Lookup(plan.Tokens));
    }

    /// <summary>An answer for a layer the attempt is not at (a confused or hostile peer): refused, and the attempt fails.</summary>
    void WrongLayer(ActiveStep step, int layer, Action release)
    {
        release();
        MoeMetrics.FrameRejected(Serialization.FrameRejection.Inconsistent);
        Failed(step, new StepFailure(StepFailureCause.Fault, $"an answer for layer {layer} arrived while the step was at layer {step.Layer}"));
    }

    void NextLayer(ActiveStep step, FeedForwardComputed m)
    {
        if (m.Layer + 1 < Layers)
        {
            step.Layer = m.Layer + 1;
            attentionRegion.Tell(new AttentionStep(roster.AttentionId(m.Layer + 1), step.AttemptId, step.Plan.Layout, m.Output) { Copies = step.Plan.Copies });
            return;
        }
        using (var scope = NewDisposeScope())
        {
            Tensor logits;
            try { logits = Logits(step.Plan, m.Output); }
            catch (Exception e)
            {
                Failed(step, new StepFailure(StepFailureCause.Fault, $"gateway, computing the logits: {e.Message}"));
                return;
            }
            events.Clear();
            scheduler.CompleteStep(step.Plan, logits, events);
        }
        statistics?.Tell(StepFinished.Of(step.AttemptId, step.Plan));
        MoeMetrics.StepSeconds.Observe(step.Clock.Elapsed.TotalSeconds);
        Deliver();
        StepEnded();
    }

    /// <summary>Final norm and LM head on the rows the plan needs logits for: [rows, V] float32, owned by the caller's scope.</summary>
    Tensor Logits(StepPlan plan, TensorPayload output)
    {
        using var _ = no_grad();
        var x = output.Take(model.Options);
        return head!.forward(x.index_select(0, tensor(plan.LogitRows(), ScalarType.Int64, x.device)));
    }

    /// <summary>No attempt of a step runs any more: moves may begin, and the next step is planned.</summary>
    void StepEnded()
    {
        Timers.Cancel(StepTimer);
        UpdateGauges();
        barrier.Acknowledge();
        Go(Phase.Idle, Idle);
        Self.Tell(new RunStep());
    }

    void Reprefill(AttentionCacheMissing m)
    {
        log.Warning("attention layer {0} lost the KV cache of slots [{1}]; re-prefilling those sequences", m.Layer, string.Join(", ", m.Slots));
        MoeMetrics.Recoveries.WithLabels("kv_cache_reprefill").Inc();
        attentionRegion.Tell(new StartAttention(roster.AttentionId(m.Layer), options.Batching.MaxBatchSize, options.Batching.ContextLength));
        scheduler.InvalidateCache(m.Slots);
        // An entity that lost these slots restarted and lost the prefixes cached in its free slots too.
        scheduler.ForgetCachedPrefixes();
        StepEnded();
    }

    void Failed(ActiveStep step, StepFailure failure)
    {
        switch (recovery.Decide(step, failure, ClusterChanging))
        {
            case StepRecovery.Park p:
                Park(step, p.Reason);
                break;
            case StepRecovery.Retry:
                log.Warning("retrying step (attempt {0}): {1}", step.Attempt, failure.Reason);
                MoeMetrics.StepRetries.WithLabels(Label(failure.Cause)).Inc();
                Run(step);
                break;
            case StepRecovery.FailSequences f:
                log.Warning("failing {0} of the step's {1} sequences: {2}", f.RequestIds.Count, step.Plan.SegmentRequests.Count, f.Error);
                events.Clear();
                scheduler.Fail(f.RequestIds, f.Error, events);
                Deliver();
                StepEnded();
                break;
        }
    }

    static string Label(StepFailureCause cause) => cause switch
    {
        StepFailureCause.Fault => "fault",
        StepFailureCause.ExpertsUnanswered => "experts_unanswered",
        _ => "timeout",
    };

    // ---- recovery and moves -----------------------------------------------------------------------------------------

    /// <summary>Abandons the running attempt (its answers become stale) and waits for the cluster to recover.</summary>
    void Park(ActiveStep step, string reason)
    {
        log.Warning("step parked until the cluster recovers: {0}", reason);
        Timers.Cancel(StepTimer);
        step.Begin(++nextAttemptId);
        barrier.Acknowledge();
        var since = DateTime.UtcNow;
        Timers.StartPeriodicTimer(RecoveryTimer, new CheckRecovery(), TimeSpan.FromMilliseconds(200));
        Go(Phase.Parked, () => Parked(step, reason, since));
        TryResume(step, reason, since);
    }

    void TryResume(ActiveStep step, string reason, DateTime since)
    {
        var waited = DateTime.UtcNow - since;
        if (roster.AllStarted && !MembersUnreachable && !barrier.Active)
        {
            log.Info("cluster recovered after {0:0.0}s; re-running the parked step", waited.TotalSeconds);
            MoeMetrics.StepRetries.WithLabels("recovered").Inc();
            Timers.Cancel(RecoveryTimer);
            Run(step);
            return;
        }
        if (waited < options.StepTimeout) return;
        // The cluster did not recover in time: this counts as a failed attempt, and a new wait begins (or the requests fail).
        Timers.Cancel(RecoveryTimer);
        var failure = new StepFailure(StepFailureCause.Timeout, $"{reason}, and the cluster did not recover within {options.StepTimeout.TotalSeconds:0}s");
        switch (recovery.Decide(step, failure, clusterChanging: false))
        {
            case StepRecovery.Retry:
                log.Warning("still waiting for the cluster (attempt {0}): {1}", step.Attempt, failure.Reason);
                MoeMetrics.StepRetries.WithLabels("timeout").Inc();
                if (ClusterChanging) Park(step, reason);
                else Run(step);
                break;
            case StepRecovery.FailSequences f:
                log.Error("failing the step's {0} sequences: {1}", f.RequestIds.Count, f.Error);
                events.Clear();
                scheduler.Fail(f.RequestIds, f.Error, events);
                Deliver();
                StepEnded();
                break;
        }
    }

    /// <summary>A node that may have held some of our entities is gone: start them again (the coordinator re-homes the
    /// shards of the gone node on the survivors, each loading its weights). A node that left gracefully handed its
    /// shards off first: nothing was lost, the entities are only asked where they live now. True when the node held
    /// any of ours.</summary>
    bool NodeGone(ClusterEvent.MemberRemoved m)
    {
        // This node is stopping: the cluster reports every member removed as it shuts down.
        if (m.Member.UniqueAddress.Equals(cluster.SelfUniqueAddress) || cluster.IsTerminated
            || cluster.SelfMember.Status is MemberStatus.Leaving or MemberStatus.Exiting or MemberStatus.Removed) return false;
        bool graceful = m.PreviousStatus == MemberStatus.Exiting;
        int ask = roster.Forget(m.Member);
        if (ask == 0) return false;
        if (graceful) log.Info("node {0} left; confirming where its entities live now ({1} to ask)", m.Member.Address, ask);
        else log.Warning("node {0} was downed and removed; confirming where its entities live now ({1} to ask)", m.Member.Address, ask);
        MoeMetrics.Recoveries.WithLabels(graceful ? "node_left" : "node_removed").Inc();
        StartWarmUp();
        return true;
    }

    void MemberUp(ClusterEvent.MemberUp m)
    {
        if (!roster.MemberUp(m.Member)) return;
        Self.Tell(new WarmUp());
        Self.Tell(new RunStep());
    }

    void ExpertStarted(ExpertStarted m)
    {
        roster.Started(m);
        barrier.Arrived(m);
    }

    void Announced(PlacementWatcherActor.ExpertsMoving m)
    {
        barrier.Announce(m.From, Sender);
        log.Info("experts {0} are moving; pausing expert work until they answer from their new homes", string.Join(", ", m.From.Keys));
        Timers.StartPeriodicTimer(ProbeTimer, new ProbeMoves(), TimeSpan.FromMilliseconds(250));
    }

    void EndPause()
    {
        barrier.Lift();
        Timers.Cancel(ProbeTimer);
        Go(Phase.Idle, Idle);
        Self.Tell(new RunStep());
    }

    // ---- warm-up, status, delivery ----------------------------------------------------------------------------------

    void StartWarmUp() => Timers.StartPeriodicTimer(WarmUpTimer, new WarmUp(), TimeSpan.Zero, TimeSpan.FromMilliseconds(500));

    void SendWarmUp()
    {
        if (roster.AllStarted) { Timers.Cancel(WarmUpTimer); return; }
        foreach (var l in roster.AttentionToStart())
            attentionRegion.Tell(new StartAttention(roster.AttentionId(l), options.Batching.MaxBatchSize, options.Batching.ContextLength));
        foreach (var id in roster.ExpertsToStart()) expertRegion.Tell(new StartExpert(id));
    }

    GatewayStatus Status() => new(Ready, scheduler.Waiting, scheduler.Running, scheduler.CachedTokens, scheduler.CachedTokens * kvBytesPerToken,
        Ready ? "ready"
        : !roster.Quorum ? $"waiting for {options.MinExpertNodes} expert nodes to be up ({roster.UpExpertNodes} now)"
        : $"{phase switch { Phase.Parked => "recovering: ", Phase.PausedForMoves => "moving experts: ", _ => "warming up: " }}" +
          $"{roster.AttentionStarted}/{Layers} attention layers, {roster.ExpertsStarted}/{roster.ExpertCount} experts loaded, {directory.Placement.Count}/{roster.ExpertCount} placed");

    void Deliver()
    {
        foreach (var e in events)
        {
            if (e is SequenceFinished f)
            {
                if (f.Reason == FinishReason.Error) failed++; else finished++;
            }
            if (!clients.TryGetValue(e.RequestId, out var subscriber)) continue;
            metrics.Observe(e);
            if (e is SequenceFinished) clients.Remove(e.RequestId);
            subscriber.Tell(e);
        }
        events.Clear();
    }

    void UpdateGauges()
    {
        metrics.Gauges(scheduler);
        MoeMetrics.KvCacheCapacityBytes.Set(roster.KvCacheBytes);
    }
}
