using Akka.Actor;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Routing;

/// <summary>
/// The feed-forward half of one layer, on the gateway's node. For a MoE layer: gate the tokens, group them by expert
/// and by the node that holds each expert, send one <see cref="DispatchTokens"/> per node, compute the shared expert
/// while the experts work, gather, and combine in ascending expert order (the same sum the single-process model
/// computes). A node that does not answer within the expert timeout has its experts' rows re-sent one by one through
/// the shard region, which reaches each expert wherever it lives now; a second timeout fails the step (the gateway
/// retries it). Dense layers (Qwen2-MoE's mlp_only_layers) are computed here.
/// </summary>
public sealed class RouterActor : ReceiveActor, IWithTimers
{
    sealed class Dispatch : IDisposable
    {
        public required long StepId;
        public required IActorRef ReplyTo;
        public required Tensor Residual, Normed;
        public required ExpertGroups Groups;
        public Tensor? Shared;
        public required Tensor?[] Outputs;
        public int Attempt = 1;
        public bool Complete => Outputs.All(o => o is not null);

        public void Dispose()
        {
            Residual.Dispose(); Normed.Dispose(); Groups.Dispose(); Shared?.Dispose();
            foreach (var o in Outputs) o?.Dispose();
        }
    }

    sealed record DispatchTimeout(long DispatchId, int Attempt);
    sealed record HostResolved(string Node, IActorRef? Host);

    readonly int layer;
    readonly ModelSource model;
    readonly IActorRef expertRegion;
    readonly ExpertDirectory directory;
    readonly TimeSpan expertTimeout;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly Dictionary<long, Dispatch> dispatches = new();
    readonly Dictionary<long, (long dispatch, int group)> regionCalls = new();
    readonly LoadWindow window;
    readonly Dictionary<string, ICanTell> hosts = new();
    TopKRouter? gate;
    ExpertMlp? sharedExpert, denseMlp;
    MoeCluster.Model.Layers.Linear? sharedGate;
    long nextId;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int layer, ModelSource model, IActorRef expertRegion, ExpertDirectory directory, TimeSpan expertTimeout) =>
        Akka.Actor.Props.Create(() => new RouterActor(layer, model, expertRegion, directory, expertTimeout));

    public RouterActor(int layer, ModelSource model, IActorRef expertRegion, ExpertDirectory directory, TimeSpan expertTimeout)
    {
        this.layer = layer;
        this.model = model;
        this.expertRegion = expertRegion;
        this.directory = directory;
        this.expertTimeout = expertTimeout;
        window = new LoadWindow(model.Config.NumExperts, steps: 200);
        Receive<FeedForwardStep>(Step);
        Receive<TokensComputed>(OnNodeResults);
        Receive<ExpertComputed>(OnRegionResult);
        Receive<DispatchTimeout>(OnTimeout);
        Receive<HostResolved>(m => { if (m.Host is null) hosts.Remove(m.Node); else hosts[m.Node] = m.Host; });
        Receive<GetExpertLoad>(_ => Sender.Tell(new ExpertLoad(layer, window.Totals(), window.Steps)));
    }

    protected override void PreStart()
    {
        var c = model.Config;
        var prefix = model.Names.FeedForwardPrefix(layer);
        if (!c.IsMoeLayer(layer))
        {
            denseMlp = new ExpertMlp(c.HiddenSize, c.IntermediateSize, false, model.Options);
            model.Load(denseMlp, prefix);
            return;
        }
        gate = new TopKRouter(c.HiddenSize, c.NumExperts, c.TopK, c.NormTopKProb, model.Options);
        model.Load(gate, prefix + "gate.");
        if (c.HasSharedExpert)
        {
            sharedExpert = new ExpertMlp(c.HiddenSize, c.SharedExpertIntermediateSize, false, model.Options);
            sharedGate = new MoeCluster.Model.Layers.Linear(c.HiddenSize, 1, false, model.Options);
            model.Load(sharedExpert, prefix + "shared_expert.");
            model.Load(sharedGate, prefix + "shared_expert_gate.");
        }
    }

    void Step(FeedForwardStep m)
    {
        using var _ = no_grad();
        if (denseMlp is not null)
        {
            using var scope = NewDisposeScope();
            var h = m.Residual.Take(model.Options.Device);
            var n = m.Normed.Take(model.Options.Device);
            Sender.Tell(new FeedForwardComputed(m.StepId, layer, TensorPayload.Own(h + denseMlp.forward(n))));
            return;
        }
        var residual = m.Residual.Take(model.Options.Device);
        var normed = m.Normed.Take(model.Options.Device);
        ExpertGroups groups;
        using (var routing = gate!.Route(normed)) groups = ExpertGroups.From(routing, model.Config.NumExperts);
        RecordLoad(groups.TokensPerExpert);
        long id = ++nextId;
        var d = new Dispatch
        {
            StepId = m.StepId, ReplyTo = Sender, Residual = residual, Normed = normed, Groups = groups,
            Outputs = new Tensor?[groups.Groups.Count],
        };
        dispatches[id] = d;

        // One message per destination node; experts with no known home yet go through the region one by one.
        var byNode = new Dictionary<string, List<ExpertInput>>();
        for (int i = 0; i < groups.Groups.Count; i++)
        {
            var g = groups.Groups[i];
            var node = directory.NodeOf(new ExpertKey(layer, g.Expert).EntityId);
            if (node is null) { SendThroughRegion(id, d, i); continue; }
            if (!byNode.TryGetValue(node, out var items)) byNode[node] = items = new List<ExpertInput>();
            items.Add(new ExpertInput(g.Expert, TensorPayload.Own(Rows(d, i))));
        }
        foreach (var (node, items) in byNode)
        {
            MoeMetrics.ExpertBatches.WithLabels(node).Inc();
            Host(node).Tell(new DispatchTokens(id, layer, items), Self);
        }
        // The shared expert runs here while the routed experts run elsewhere.
        d.Shared = MoeBlock.GatedSharedOutput(sharedExpert, sharedGate, normed)?.DetachFromDisposeScope();
        Timers.StartSingleTimer(id, new DispatchTimeout(id, 1), expertTimeout);
        TryComplete(id, d);
    }

    /// <summary>The expert host of a node, resolved once (path parsing per step costs more than the message).</summary>
    ICanTell Host(string node)
    {
        if (hosts.TryGetValue(node, out var host)) return host;
        var selection = Context.ActorSelection($"{node}/user/{ExpertHostActor.Name}");
        hosts[node] = selection;
        selection.ResolveOne(expertTimeout).PipeTo(Self, success: r => new HostResolved(node, r), failure: _ => new HostResolved(node, null));
        return selection;
    }

    Tensor Rows(Dispatch d, int group)
    {
        using var scope = NewDisposeScope();
        return d.Normed.index_select(0, d.Groups.Groups[group].TokenIndices).MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    void SendThroughRegion(long id, Dispatch d, int group)
    {
        long correlation = ++nextId;
        regionCalls[correlation] = (id, group);
        var key = new ExpertKey(layer, d.Groups.Groups[group].Expert);
        expertRegion.Tell(new ComputeExpert(key.EntityId, correlation, TensorPayload.Own(Rows(d, group))), Self);
    }

    void OnNodeResults(TokensComputed m)
    {
        if (!dispatches.TryGetValue(m.DispatchId, out var d))
        {
            foreach (var item in m.Items) item.Rows.Take().Dispose();
            return;
        }
        foreach (var item in m.Items)
        {
            int group = IndexOf(d, item.Expert);
            var output = item.Rows.Take(model.Options.Device);
            if (group < 0 || d.Outputs[group] is not null) { output.Dispose(); continue; }
            d.Outputs[group] = output;
        }
        TryComplete(m.DispatchId, d);
    }

    void OnRegionResult(ExpertComputed m)
    {
        var output = m.Output.Take(model.Options.Device);
        if (!regionCalls.Remove(m.CorrelationId, out var call) || !dispatches.TryGetValue(call.dispatch, out var d) || d.Outputs[call.group] is not null)
        {
            output.Dispose();
            return;
        }
        d.Outputs[call.group] = output;
        TryComplete(call.dispatch, d);
    }

    void OnTimeout(DispatchTimeout t)
    {
        if (!dispatches.TryGetValue(t.DispatchId, out var d) || t.Attempt != d.Attempt) return;
        var missing = Enumerable.Range(0, d.Outputs.Length).Where(i => d.Outputs[i] is null).ToList();
        if (d.Attempt >= 2)
        {
            log.Warning("layer {0}: experts [{1}] did not answer after a retry; failing step {2}", layer,
                string.Join(", ", missing.Select(i => d.Groups.Groups[i].Expert)), d.StepId);
            d.ReplyTo.Tell(new FeedForwardFailed(d.StepId, layer, $"layer {layer}: experts {string.Join(", ", missing.Select(i => d.Groups.Groups[i].Expert))} did not answer within {expertTimeout.TotalSeconds:0.#}s twice"));
            Forget(t.DispatchId, d);
            return;
        }
        log.Warning("layer {0}: re-sending experts [{1}] through the shard region after {2}s without an answer", layer,
            string.Join(", ", missing.Select(i => d.Groups.Groups[i].Expert)), expertTimeout.TotalSeconds);
        MoeMetrics.Recoveries.WithLabels("expert_retry").Inc();
        hosts.Clear();   // a node that came back at the same address is a new incarnation: resolve again
        d.Attempt = 2;
        foreach (var i in missing) SendThroughRegion(t.DispatchId, d, i);
        Timers.StartSingleTimer(t.DispatchId, new DispatchTimeout(t.DispatchId, 2), expertTimeout);
    }

    void TryComplete(long id, Dispatch d)
    {
        if (!d.Complete) return;
        using (var scope = NewDisposeScope())
        {
            var moe = MoeBlock.Combine(d.Normed, d.Groups, d.Outputs!, d.Shared);
            d.ReplyTo.Tell(new FeedForwardComputed(d.StepId, layer, TensorPayload.Own(d.Residual + moe)));
        }
        Forget(id, d);
    }

    void Forget(long id, Dispatch d)
    {
        Timers.Cancel(id);
        dispatches.Remove(id);
        foreach (var k in regionCalls.Where(p => p.Value.dispatch == id).Select(p => p.Key).ToList()) regionCalls.Remove(k);
        d.Dispose();
    }

    static int IndexOf(Dispatch d, int expert)
    {
        for (int i = 0; i < d.Groups.Groups.Count; i++) if (d.Groups.Groups[i].Expert == expert) return i;
        return -1;
    }

    void RecordLoad(long[] counts)
    {
        window.Add(counts);
        var c = model.Config;
        MoeMetrics.LayerTokens.WithLabels(layer.ToString()).Inc(counts.Sum());
        if ((long)c.NumLayers * c.NumExperts <= MoeMetrics.ExpertSeriesLimit)
            for (int e = 0; e < counts.Length; e++)
                if (counts[e] > 0)
                    MoeMetrics.ExpertTokens.WithLabels(layer.ToString(), e.ToString(), directory.NodeOf(new ExpertKey(layer, e).EntityId) ?? "unplaced").Inc(counts[e]);
        var totals = window.Totals();
        long max = totals.Max(), sum = totals.Sum();
        if (max > 0)
        {
            MoeMetrics.LayerBalancedness.WithLabels(layer.ToString()).Set((double)sum / totals.Length / max);
            MoeMetrics.LayerHottestShare.WithLabels(layer.ToString()).Set((double)max / sum);
        }
    }

    protected override void PostStop()
    {
        foreach (var d in dispatches.Values) d.Dispose();
        gate?.Dispose(); sharedExpert?.Dispose(); sharedGate?.Dispose(); denseMlp?.Dispose();
    }
}

/// <summary>Tokens per expert over the last <c>steps</c> steps (a ring of per-step counts).</summary>
public sealed class LoadWindow(int experts, int steps)
{
    readonly long[][] ring = Enumerable.Range(0, steps).Select(_ => new long[experts]).ToArray();
    readonly long[] totals = new long[experts];
    int next, filled;

    public int Steps => filled;

    public void Add(long[] counts)
    {
        var slot = ring[next];
        for (int e = 0; e < experts; e++) { totals[e] += counts[e] - slot[e]; slot[e] = counts[e]; }
        next = (next + 1) % ring.Length;
        filled = Math.Min(filled + 1, ring.Length);
    }

    public long[] Totals() => (long[])totals.Clone();
}
