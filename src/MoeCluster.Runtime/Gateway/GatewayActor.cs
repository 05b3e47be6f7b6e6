using System.Diagnostics;
using Akka.Actor;
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
    }

    sealed class Client(IActorRef subscriber, long arrivedTicks)
    {
        public IActorRef Subscriber { get; } = subscriber;
        public long Arrived { get; } = arrivedTicks;
        public long? Started, LastToken;
    }

    sealed record RunStep;
    sealed record StepTimedOut(long StepId);
    sealed record WarmUp;

    readonly string gatewayName;
    readonly ModelSource model;
    readonly RuntimeOptions options;
    readonly IActorRef attentionRegion, expertRegion;
    readonly ExpertDirectory directory;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly BatchScheduler scheduler;
    readonly Dictionary<string, Client> clients = new();
    readonly List<GenerationEvent> events = new();
    readonly HashSet<string> attentionReady = new(), expertsReady = new();
    IActorRef[] routers = [];
    Model.Layers.Embedding? embedding;
    RmsNorm? finalNorm;
    Model.Layers.Linear? lmHead;
    ActiveStep? step;
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
        scheduler = new BatchScheduler(options.Batching);
        Receive<SubmitGeneration>(Submit);
        Receive<CancelGeneration>(m => { if (scheduler.Cancel(m.RequestId)) KickOff(); });
        Receive<GetGatewayStatus>(_ => Sender.Tell(Status()));
        Receive<RunStep>(_ => StartStep());
        Receive<AttentionComputed>(OnAttention);
        Receive<AttentionCacheMissing>(OnCacheMissing);
        Receive<FeedForwardComputed>(OnFeedForward);
        Receive<FeedForwardFailed>(m => { if (step?.Id == m.StepId) RetryStep(m.Reason); });
        Receive<StepTimedOut>(m => { if (step?.Id == m.StepId) RetryStep($"step did not finish within {options.StepTimeout.TotalSeconds:0}s"); });
        Receive<AttentionStarted>(m => attentionReady.Add(m.EntityId));
        Receive<ExpertStarted>(m => expertsReady.Add(m.ExpertId));
        Receive<WarmUp>(_ => SendWarmUp());
    }

    int Layers => model.Config.NumLayers;
    string AttentionId(int layer) => AttentionEntity.Id(gatewayName, layer);
    int ExpertCount => model.Config.MoeLayers.Count() * model.Config.NumExperts;

    /// <summary>Every attention layer and expert loaded, and the routers know where each expert lives.</summary>
    bool Ready => attentionReady.Count == Layers && expertsReady.Count == ExpertCount && directory.Placement.Count >= ExpertCount;

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
        MoeMetrics.KvCacheCapacityBytes.Set((double)kvBytesPerToken * options.Batching.MaxBatchSize * options.Batching.ContextLength);
        // Start every attention layer and expert now so weights load before the first request, and again periodically
        // until all answered (nodes may still be joining).
        Timers.StartPeriodicTimer("warm-up", new WarmUp(), TimeSpan.Zero, TimeSpan.FromSeconds(2));
    }

    void SendWarmUp()
    {
        if (attentionReady.Count == Layers && expertsReady.Count == ExpertCount) { Timers.Cancel("warm-up"); return; }
        for (int l = 0; l < Layers; l++)
            if (!attentionReady.Contains(AttentionId(l)))
                attentionRegion.Tell(new StartAttention(AttentionId(l), options.Batching.MaxBatchSize, options.Batching.ContextLength));
        foreach (var l in model.Config.MoeLayers)
            for (int e = 0; e < model.Config.NumExperts; e++)
            {
                var id = new ExpertKey(l, e).EntityId;
                if (!expertsReady.Contains(id)) expertRegion.Tell(new StartExpert(id));
            }
    }

    GatewayStatus Status() => new(Ready, scheduler.Waiting, scheduler.Running, scheduler.CachedTokens, scheduler.CachedTokens * kvBytesPerToken,
        Ready ? "ready" : $"warming up: {attentionReady.Count}/{Layers} attention layers, {expertsReady.Count}/{ExpertCount} experts loaded, {directory.Placement.Count}/{ExpertCount} placed");

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
        clients[r.Id] = new Client(Sender, Stopwatch.GetTimestamp());
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
        if (step is not null) return;
        events.Clear();
        var plan = scheduler.PlanStep(events);
        Deliver();
        if (plan is null) { UpdateGauges(); return; }
        long now = Stopwatch.GetTimestamp();
        foreach (var id in plan.SegmentRequests)
            if (clients.TryGetValue(id, out var c) && c.Started is null)
            {
                c.Started = now;
                MoeMetrics.QueueTime.Observe(Stopwatch.GetElapsedTime(c.Arrived, now).TotalSeconds);
            }
        step = new ActiveStep { Plan = plan, Id = ++nextStepId };
        MoeMetrics.StepTokens.Observe(plan.Tokens.Length);
        MoeMetrics.StepSequences.Observe(plan.Layout.Segments.Count);
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
        float[] logits;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var x = output.Take(model.Options.Device);
            var last = x.index_select(0, tensor(s.Plan.Layout.LastTokenIndices(), ScalarType.Int64, x.device));
            var n = finalNorm!.forward(last);
            var l = lmHead is not null ? lmHead.forward(n) : nn.functional.linear(n, embedding!.weight);
            logits = l.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        }
        events.Clear();
        scheduler.CompleteStep(s.Plan, logits, model.Config.VocabSize, events);
        MoeMetrics.StepSeconds.Observe(s.Clock.Elapsed.TotalSeconds);
        step = null;
        Deliver();
        UpdateGauges();
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
        KickOff();
    }

    void RetryStep(string reason)
    {
        var s = step!;
        if (s.Attempt >= options.MaxStepAttempts)
        {
            log.Error("step failed {0} times ({1}); failing the {2} running requests", s.Attempt, reason, scheduler.Running);
            Timers.Cancel("step-timeout");
            events.Clear();
            scheduler.FailRunning($"generation step failed after {s.Attempt} attempts: {reason}", events);
            step = null;
            Deliver();
            UpdateGauges();
            KickOff();
            return;
        }
        log.Warning("retrying step (attempt {0}): {1}", s.Attempt + 1, reason);
        MoeMetrics.StepRetries.WithLabels(reason.Contains("did not finish") ? "timeout" : "failure").Inc();
        s.Attempt++;
        s.Id = ++nextStepId;   // answers to the abandoned attempt are recognised as stale
        RunFromFirstLayer();
    }

    void Deliver()
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var e in events)
        {
            if (!clients.TryGetValue(e.RequestId, out var c)) continue;
            switch (e)
            {
                case TokenGenerated:
                    MoeMetrics.GenerationTokens.Inc();
                    if (c.LastToken is null) MoeMetrics.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(c.Arrived, now).TotalSeconds);
                    else MoeMetrics.InterTokenLatency.Observe(Stopwatch.GetElapsedTime(c.LastToken.Value, now).TotalSeconds);
                    c.LastToken = now;
                    break;
                case SequenceFinished f:
                    clients.Remove(e.RequestId);
                    MoeMetrics.PromptTokens.Inc(f.PromptTokens);
                    MoeMetrics.RequestsFinished.WithLabels(f.Reason.ToString().ToLowerInvariant()).Inc();
                    MoeMetrics.RequestLatency.Observe(Stopwatch.GetElapsedTime(c.Arrived, now).TotalSeconds);
                    break;
            }
            c.Subscriber.Tell(e);
        }
        events.Clear();
    }

    void UpdateGauges()
    {
        MoeMetrics.RequestsWaiting.Set(scheduler.Waiting);
        MoeMetrics.RequestsRunning.Set(scheduler.Running);
        MoeMetrics.KvCacheBytes.Set(scheduler.CachedTokens * kvBytesPerToken);
    }

    protected override void PostStop()
    {
        events.Clear();
        scheduler.FailRunning("the gateway stopped", events);
        Deliver();
        embedding?.Dispose(); finalNorm?.Dispose(); lmHead?.Dispose();
    }
}
