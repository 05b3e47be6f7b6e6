using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Serialization;
using MoeCluster.Runtime.Protocol;
using ReplicaSplitter = MoeCluster.Placement.ReplicaSplitter;
using TorchSharp;
using static TorchSharp.torch;
using HostRows = MoeCluster.Model.Kernels.ExpertRows;

namespace MoeCluster.Runtime.Routing;

/// <summary>
/// The feed-forward half of one layer, on the gateway's node. For a MoE layer: gate the tokens, group them by expert,
/// split each expert's tokens over its loaded copies (the primary and, for hot experts, redundant replicas:
/// <see cref="ReplicaSplitter"/>, contiguous and deterministic), send one <see cref="DispatchTokens"/> per node carrying
/// each of the node's tokens once, however many of its experts the token chose, compute the shared expert while the
/// experts work, gather and combine (the same sum the single-process model computes). With top-k ≤ 2 the nodes combine
/// their own experts' outputs and send one row per token back: a token's sum then has at most two terms, one from each
/// of at most two nodes, and adding two numbers does not depend on their order, so this is the single-process sum
/// exactly. With larger k each expert's output comes back and the combine runs here in ascending expert order. A share
/// that does not come back within the expert timeout is re-sent through the shard region, which reaches the expert's
/// primary wherever it lives now; a second timeout fails the step (the gateway retries it). Dense layers (Qwen2-MoE's mlp_only_layers) are computed here.
/// Failures are answered, not waited out: an expert that throws (<see cref="ExpertFailed"/>), a host that reports failed
/// or evicted items (<see cref="DispatchFailed"/>), a malformed answer, or an exception here ends the layer at once with
/// <see cref="FeedForwardFailed"/> naming the rows concerned.
/// </summary>
public sealed class RouterActor : ReceiveActor, IWithTimers
{
    /// <summary>Rows [Start, Start + Count) of an expert group, sent to one node (a replica when <c>Replica</c>).</summary>
    sealed record Share(string? Node, int Start, int Count, bool Replica);

    sealed class Dispatch : IDisposable
    {
        public required long StepId;
        public required IActorRef ReplyTo;
        public required Tensor Residual, Normed;
        public required ExpertGroups Groups;
        public Tensor? Shared;
        /// <summary>Per group: its shares, the output of each share, and the group's output once every share is in.</summary>
        public required Share[][] Shares;
        public required Tensor?[][] Parts;
        public required Tensor?[] Outputs;
        /// <summary>Per group and share: its output has been taken into account.</summary>
        public required bool[][] Done;
        /// <summary>Nodes combine (top-k ≤ 2): Σ gate × output over what has come back, [T, D]; null otherwise.</summary>
        public Tensor? Sum;
        public readonly List<long> NodeCalls = new();
        public int Attempt = 1;
        public bool Complete => Done.All(g => g.All(x => x));

        public void Dispose()
        {
            Residual.Dispose(); Normed.Dispose(); Groups.Dispose(); Shared?.Dispose(); Sum?.Dispose();
            foreach (var o in Outputs) o?.Dispose();
            foreach (var parts in Parts) foreach (var p in parts) p?.Dispose();
        }
    }

    sealed record DispatchTimeout(long DispatchId, int Attempt);
    sealed record HostResolved(string Node, IActorRef? Host);

    readonly int layer;
    readonly ModelSource model;
    readonly IActorRef expertRegion;
    readonly ExpertDirectory directory;
    readonly TimeSpan expertTimeout;
    readonly FaultInjector? faults;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly Dictionary<long, Dispatch> dispatches = new();
    /// <summary>Per-node message id → its dispatch, the (group, share) of each item in item order, and the step rows
    /// the message carries (ascending; row i of a combined answer is token Tokens[i]).</summary>
    readonly Dictionary<long, (long dispatch, (int group, int share)[] items, long[] tokens)> nodeCalls = new();
    readonly Dictionary<long, (long dispatch, int group, int share)> regionCalls = new();
    readonly LoadWindow window;
    readonly long[] cumulative;
    long totalSteps;
    readonly Dictionary<string, ICanTell> hosts = new();
    /// <summary>The layer's MoE block without its routed experts (router, shared expert, combine), or null for a dense layer.</summary>
    MoeBlock? moe;
    ExpertMlp? denseMlp;
    long nextId;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The gateway's routing statistics (null when they are off) and the step being routed, for its reports.</summary>
    readonly IActorRef? statistics;
    long routingStep;
    /// <summary>With look-ahead: the next MoE layer and its gate, applied here to this layer's hidden state to prefetch
    /// the experts it will likely pick (Pre-gated MoE); null otherwise.</summary>
    readonly bool lookahead;
    (int Layer, TopKRouter Gate)? next;

    public static Props Props(int layer, ModelSource model, IActorRef expertRegion, ExpertDirectory directory, TimeSpan expertTimeout, FaultInjector? faults = null, IActorRef? statistics = null, bool lookahead = false) =>
        Akka.Actor.Props.Create(() => new RouterActor(layer, model, expertRegion, directory, expertTimeout, faults, statistics, lookahead));

    public RouterActor(int layer, ModelSource model, IActorRef expertRegion, ExpertDirectory directory, TimeSpan expertTimeout, FaultInjector? faults, IActorRef? statistics, bool lookahead)
    {
        this.statistics = statistics;
        this.lookahead = lookahead;
        this.layer = layer;
        this.model = model;
        this.expertRegion = expertRegion;
        this.directory = directory;
        this.expertTimeout = expertTimeout;
        this.faults = faults;
        window = new LoadWindow(model.Config.NumExperts, steps: 200);
        cumulative = new long[model.Config.NumExperts];
        Receive<FeedForwardStep>(Step);
        Receive<TokensComputed>(OnNodeResults);
        Receive<ExpertComputed>(OnRegionResult);
        Receive<DispatchFailed>(OnNodeFailed);
        Receive<ExpertFailed>(OnRegionFailed);
        Receive<DispatchTimeout>(OnTimeout);
        Receive<HostResolved>(m => { if (m.Host is null) hosts.Remove(m.Node); else hosts[m.Node] = m.Host; });
        // A node that left or became unreachable may come back at the same address as a new process: resolve again.
        Receive<ClusterEvent.MemberRemoved>(m => hosts.Remove(m.Member.Address.ToString()));
        Receive<ClusterEvent.UnreachableMember>(m => hosts.Remove(m.Member.Address.ToString()));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        Receive<GetExpertLoad>(_ => Sender.Tell(new ExpertLoad(layer, window.Totals(), window.Steps, (long[])cumulative.Clone(), totalSteps)));
    }

    protected override void PreStart()
    {
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.UnreachableMember));
        var c = model.Config;
        var prefix = model.Names.FeedForwardPrefix(layer);
        if (!c.IsMoeLayer(layer))
        {
            denseMlp = ExpertMlp.Dense(c, model.Options);
            model.Load(denseMlp, prefix);
            return;
        }
        moe = new MoeBlock(c, model.Options, routedExperts: false);
        model.Load(moe, prefix);
        if (statistics is not null) moe.OnRouted = t => statistics.Tell(new LayerRouted(routingStep, t.AtLayer(layer)));
        if (lookahead && c.MoeLayers.FirstOrDefault(l => l > layer, -1) is var following and >= 0)
        {
            var gate = new TopKRouter(c.HiddenSize, c.NumExperts, c.TopK, c.NormTopKProb, model.Options);
            model.Load(gate, model.Names.FeedForwardPrefix(following) + "gate.");
            next = (following, gate);
        }
    }

    /// <summary>Whatever throws while a step is dispatched (out of memory in the gate, a bug) is answered at once.</summary>
    void Step(FeedForwardStep m)
    {
        long first = nextId + 1;
        try
        {
            faults?.ThrowIfArmed(FaultSite.Router, Self.Path.Name);
            Route(m);
        }
        catch (Exception e)
        {
            log.Warning("layer {0}: step {1} failed in the router: {2}", layer, m.StepId, e.Message);
            foreach (var id in dispatches.Keys.Where(id => id >= first).ToList()) Forget(id, dispatches[id]);
            Sender.Tell(new FeedForwardFailed(m.StepId, new StepFailure(StepFailureCause.Fault, $"layer {layer} router: {e.Message}")));
        }
    }

    void Route(FeedForwardStep m)
    {
        using var _ = no_grad();
        if (denseMlp is not null)
        {
            using var scope = NewDisposeScope();
            var h = m.Residual.Take(model.Options);
            var n = m.Normed.Take(model.Options);
            Sender.Tell(new FeedForwardComputed(m.StepId, layer, TensorPayload.Own(h + denseMlp.forward(n))));
            return;
        }
        var residual = m.Residual.Take(model.Options);
        Tensor? normed = null;
        ExpertGroups groups;
        try
        {
            normed = m.Normed.Take(model.Options);
            routingStep = m.StepId;
            groups = moe!.Route(normed);
        }
        catch { residual.Dispose(); normed?.Dispose(); throw; }
        RecordLoad(groups.TokensPerExpert);
        long id = ++nextId;
        int count = groups.Groups.Count;
        bool combine = model.Config.TopK <= 2;
        var d = new Dispatch
        {
            StepId = m.StepId, ReplyTo = Sender, Residual = residual, Normed = normed, Groups = groups,
            Shares = new Share[count][], Parts = new Tensor?[count][], Outputs = new Tensor?[count], Done = new bool[count][],
            Sum = combine ? zeros_like(normed).DetachFromDisposeScope() : null,
        };
        dispatches[id] = d;

        // One message per destination node; experts with no known home yet go through the region whole.
        var byNode = new Dictionary<string, List<(int group, int share)>>();
        for (int i = 0; i < count; i++)
        {
            var g = groups.Groups[i];
            int tokens = (int)g.TokenIndices.shape[0];
            var nodes = directory.ReplicasOf(new ExpertKey(layer, g.Expert).EntityId);
            d.Shares[i] = nodes.Count == 0
                ? [new Share(null, 0, tokens, false)]
                : ReplicaSplitter.Split(tokens, nodes).Where(s => s.Count > 0).Select(s => new Share(s.Node, s.Start, s.Count, s.Replica > 0)).ToArray();
            d.Parts[i] = new Tensor?[d.Shares[i].Length];
            d.Done[i] = new bool[d.Shares[i].Length];
            for (int s = 0; s < d.Shares[i].Length; s++)
            {
                var share = d.Shares[i][s];
                CountTokens(g.Expert, share.Node ?? "unplaced", share.Count);
                if (share.Node is null) { SendThroughRegion(id, d, i, s); continue; }
                if (!byNode.TryGetValue(share.Node, out var index)) byNode[share.Node] = index = new List<(int, int)>();
                index.Add((i, s));
            }
        }
        if (byNode.Count > 0)
        {
            var batches = NodeBatch.Build(d.Groups, byNode.ToDictionary(p => p.Key, p => (IReadOnlyList<(int, int, int, int, bool)>)p.Value
                .Select(x => (x.group, x.share, d.Shares[x.group][x.share].Start, d.Shares[x.group][x.share].Count, d.Shares[x.group][x.share].Replica)).ToList()), combine);
            foreach (var (node, batch) in batches)
            {
                long callId = ++nextId;
                nodeCalls[callId] = (id, byNode[node].ToArray(), batch.Tokens);
                d.NodeCalls.Add(callId);
                MoeMetrics.ExpertBatches.WithLabels(node).Inc();
                Host(node).Tell(new DispatchTokens(callId, layer, TensorPayload.Own(batch.RowsOf(d.Normed)), batch.Items, combine), Self);
            }
        }
        Prefetch(normed);
        // The shared expert runs here while the routed experts run elsewhere.
        d.Shared = moe.SharedOutput(normed)?.DetachFromDisposeScope();
        Timers.StartSingleTimer(id, new DispatchTimeout(id, 1), expertTimeout);
        TryComplete(id, d);
    }

    /// <summary>Look-ahead: the next MoE layer's gate on this layer's hidden state names the experts that layer will
    /// likely need; each node holding some of them is told now, so it loads those it has released while this layer
    /// computes. A guess only: what the next layer routes is decided by its own gate on its own input.</summary>
    void Prefetch(Tensor normed)
    {
        if (next is not { } n) return;
        using var scope = NewDisposeScope();
        using var routing = n.Gate.Route(normed);
        var experts = routing.Experts.flatten().unique().Item1.to(ScalarType.Int32).cpu().data<int>().ToArray();
        foreach (var group in experts.GroupBy(e => directory.NodeOf(new ExpertKey(n.Layer, e).EntityId)))
            if (group.Key is string node) Host(node).Tell(new PrefetchExperts(n.Layer, group.ToArray()), Self);
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

    /// <summary>The normalised rows of one share of a group: [Count, D].</summary>
    Tensor Rows(Dispatch d, int group, int share)
    {
        using var scope = NewDisposeScope();
        var s = d.Shares[group][share];
        var indices = d.Groups.Groups[group].TokenIndices;
        if (s.Start != 0 || s.Count != indices.shape[0]) indices = indices.narrow(0, s.Start, s.Count);
        return d.Normed.index_select(0, indices).MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    void SendThroughRegion(long id, Dispatch d, int group, int share)
    {
        long correlation = ++nextId;
        regionCalls[correlation] = (id, group, share);
        var key = new ExpertKey(layer, d.Groups.Groups[group].Expert);
        expertRegion.Tell(new ComputeExpert(key.EntityId, correlation, TensorPayload.Own(Rows(d, group, share))), Self);
    }

    void OnNodeResults(TokensComputed m)
    {
        if (!nodeCalls.Remove(m.DispatchId, out var call) || !dispatches.TryGetValue(call.dispatch, out var d))
        {
            Release(m);
            return;
        }
        // An answer that does not match what was sent is refused, not half-used.
        string? wrong = d.Sum is not null
            ? m.Combined is null || m.Items.Count > 0 ? "per-expert outputs where one combined row per token was asked for"
              : m.Combined.Shape.SequenceEqual(new[] { call.tokens.Length, d.Normed.shape[1] }) ? null
              : $"combined rows [{string.Join(", ", m.Combined.Shape)}], expected [{call.tokens.Length}, {d.Normed.shape[1]}]"
            : m.Combined is not null ? "combined rows where per-expert outputs were asked for"
            : m.Items.Count != call.items.Length ? $"{m.Items.Count} items for {call.items.Length} sent"
            : Enumerable.Range(0, m.Items.Count).Select(i => Mismatch(d, call.items[i], m.Items[i])).FirstOrDefault(w => w is not null);
        if (wrong is not null)
        {
            Release(m);
            MoeMetrics.FrameRejected(FrameRejection.Inconsistent);
            Fail(call.dispatch, d, StepFailureCause.Fault, $"an expert node answered layer {layer} with a malformed batch ({wrong})", call.items);
            return;
        }
        if (d.Sum is not null)
        {
            using var scope = NewDisposeScope();
            var combined = m.Combined!.Take(model.Options);
            // float32 on the CPU: added row by row on the host, bit for bit index_add_ (see ExpertHostActor.OnHost).
            if (ExpertHostActor.OnHost(d.Sum) && combined.dtype == d.Sum.dtype && combined.device_type == DeviceType.CPU)
                HostRows.Accumulate(d.Sum, call.tokens, Ones(call.tokens.Length), combined);
            else d.Sum.index_add_(0, tensor(call.tokens, ScalarType.Int64, d.Sum.device), combined, 1);
            foreach (var (group, share) in call.items) d.Done[group][share] = true;
        }
        else
            for (int i = 0; i < m.Items.Count; i++)
                Accept(d, call.items[i].group, call.items[i].share, m.Items[i].Rows.Take(model.Options));
        TryComplete(call.dispatch, d);
    }

    static float[] Ones(int n) { var w = new float[n]; Array.Fill(w, 1f); return w; }

    static void Release(TokensComputed m)
    {
        foreach (var item in m.Items) item.Rows.Take().Dispose();
        m.Combined?.Take().Dispose();
    }

    /// <summary>Why an answered item is not the output of the share it answers (null when it is).</summary>
    string? Mismatch(Dispatch d, (int group, int share) sent, ExpertInput answer)
    {
        var share = d.Shares[sent.group][sent.share];
        long[] expected = [share.Count, d.Normed.shape[1]];
        if (answer.Expert != d.Groups.Groups[sent.group].Expert) return $"expert {answer.Expert} where {d.Groups.Groups[sent.group].Expert} was sent";
        return answer.Rows.Shape.SequenceEqual(expected) ? null : $"expert {answer.Expert}: rows [{string.Join(", ", answer.Rows.Shape)}], expected [{string.Join(", ", expected)}]";
    }

    void OnNodeFailed(DispatchFailed m)
    {
        if (!nodeCalls.Remove(m.DispatchId, out var call) || !dispatches.TryGetValue(call.dispatch, out var d)) return;
        var failed = m.Items.Where(i => i >= 0 && i < call.items.Length).Select(i => call.items[i]).ToArray();
        Fail(call.dispatch, d, StepFailureCause.Fault, $"layer {layer}: {m.Reason}", failed.Length > 0 ? failed : call.items);
    }

    void OnRegionFailed(ExpertFailed m)
    {
        if (!regionCalls.Remove(m.CorrelationId, out var call) || !dispatches.TryGetValue(call.dispatch, out var d)) return;
        Fail(call.dispatch, d, StepFailureCause.Fault, $"layer {layer}: {m.Reason}", [(call.group, call.share)]);
    }

    /// <summary>Ends a dispatch at once with a failure naming the token rows of the shares concerned.</summary>
    void Fail(long id, Dispatch d, StepFailureCause cause, string reason, IEnumerable<(int group, int share)> shares)
    {
        var tokens = shares.SelectMany(p => TokenRows(d, p.group, p.share)).Distinct().Order().ToArray();
        log.Warning("layer {0}: failing step {1}: {2}", layer, d.StepId, reason);
        d.ReplyTo.Tell(new FeedForwardFailed(d.StepId, new StepFailure(cause, reason, tokens)));
        Forget(id, d);
    }

    /// <summary>Rows of the step's flat batch that one share carries.</summary>
    static int[] TokenRows(Dispatch d, int group, int share)
    {
        using var scope = NewDisposeScope();
        var s = d.Shares[group][share];
        var rows = d.Groups.Groups[group].TokenIndices.narrow(0, s.Start, s.Count).cpu();
        return rows.data<long>().ToArray().Select(t => (int)t).ToArray();
    }

    void OnRegionResult(ExpertComputed m)
    {
        var output = m.Output.Take(model.Options);
        if (!regionCalls.Remove(m.CorrelationId, out var call) || !dispatches.TryGetValue(call.dispatch, out var d))
        {
            output.Dispose();
            return;
        }
        Accept(d, call.group, call.share, output);
        TryComplete(call.dispatch, d);
    }

    /// <summary>Takes one share's output into account (the first that arrives): when nodes combine, adds gate × output
    /// to the sum; otherwise keeps it, and once a group has all its shares, concatenates them in share order, which is
    /// token order within the group.</summary>
    static void Accept(Dispatch d, int group, int share, Tensor output)
    {
        if (d.Done[group][share]) { output.Dispose(); return; }
        d.Done[group][share] = true;
        if (d.Sum is not null)
        {
            using var scope = NewDisposeScope();
            using var y = output;
            var s = d.Shares[group][share];
            var g = d.Groups.Groups[group];
            d.Sum.index_add_(0, g.TokenIndices.narrow(0, s.Start, s.Count), y * g.GateWeights.narrow(0, s.Start, s.Count).unsqueeze(1), 1);
            return;
        }
        var parts = d.Parts[group];
        parts[share] = output;
        if (parts.Any(p => p is null)) return;
        if (parts.Length == 1) d.Outputs[group] = parts[0];
        else
        {
            d.Outputs[group] = cat(parts.Select(p => p!).ToArray(), 0).DetachFromDisposeScope();
            foreach (var p in parts) p!.Dispose();
        }
        Array.Clear(parts);
    }

    void OnTimeout(DispatchTimeout t)
    {
        if (!dispatches.TryGetValue(t.DispatchId, out var d) || t.Attempt != d.Attempt) return;
        var missing = new List<(int group, int share)>();
        for (int i = 0; i < d.Done.Length; i++)
            for (int s = 0; s < d.Done[i].Length; s++)
                if (!d.Done[i][s]) missing.Add((i, s));
        string Experts() => string.Join(", ", missing.Select(m => d.Groups.Groups[m.group].Expert).Distinct());
        if (d.Attempt >= 2)
        {
            Fail(t.DispatchId, d, StepFailureCause.ExpertsUnanswered, $"layer {layer}: experts {Experts()} did not answer within {expertTimeout.TotalSeconds:0.#}s twice", missing);
            return;
        }
        log.Warning("layer {0}: re-sending experts [{1}] through the shard region after {2}s without an answer", layer, Experts(), expertTimeout.TotalSeconds);
        MoeMetrics.Recoveries.WithLabels("expert_retry").Inc();
        hosts.Clear();   // a node that came back at the same address is a new incarnation: resolve again
        d.Attempt = 2;
        // The unanswered node calls are given up (a late answer is dropped, so nothing is counted twice) and their
        // shares re-sent one by one.
        foreach (var call in d.NodeCalls) nodeCalls.Remove(call);
        foreach (var (group, share) in missing) SendThroughRegion(t.DispatchId, d, group, share);
        Timers.StartSingleTimer(t.DispatchId, new DispatchTimeout(t.DispatchId, 2), expertTimeout);
    }

    void TryComplete(long id, Dispatch d)
    {
        if (!d.Complete) return;
        try
        {
            using var scope = NewDisposeScope();
            var moe = d.Sum is null ? MoeBlock.Combine(d.Normed, d.Groups, d.Outputs!, d.Shared) : d.Shared is null ? d.Sum : d.Sum + d.Shared;
            d.ReplyTo.Tell(new FeedForwardComputed(d.StepId, layer, TensorPayload.Own(d.Residual + moe)));
        }
        catch (Exception e)
        {
            d.ReplyTo.Tell(new FeedForwardFailed(d.StepId, new StepFailure(StepFailureCause.Fault, $"layer {layer} router, combining the experts' outputs: {e.Message}")));
        }
        Forget(id, d);
    }

    void Forget(long id, Dispatch d)
    {
        Timers.Cancel(id);
        dispatches.Remove(id);
        foreach (var c in d.NodeCalls) nodeCalls.Remove(c);
        foreach (var k in regionCalls.Where(p => p.Value.dispatch == id).Select(p => p.Key).ToList()) regionCalls.Remove(k);
        d.Dispose();
    }

    void RecordLoad(long[] counts)
    {
        window.Add(counts);
        for (int e = 0; e < counts.Length; e++) cumulative[e] += counts[e];
        totalSteps++;
        MoeMetrics.LayerTokens.WithLabels(layer.ToString()).Inc(counts.Sum());
        var totals = window.Totals();
        long max = totals.Max(), sum = totals.Sum();
        if (max > 0)
        {
            MoeMetrics.LayerBalancedness.WithLabels(layer.ToString()).Set((double)sum / totals.Length / max);
            MoeMetrics.LayerHottestShare.WithLabels(layer.ToString()).Set((double)max / sum);
        }
    }

    /// <summary>Tokens of one expert sent to one node (its primary's or a replica's).</summary>
    void CountTokens(int expert, string node, int tokens)
    {
        var c = model.Config;
        if ((long)c.NumLayers * c.NumExperts <= MoeMetrics.ExpertSeriesLimit)
            MoeMetrics.ExpertTokens.WithLabels(layer.ToString(), expert.ToString(), node).Inc(tokens);
    }

    protected override void PostStop()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        foreach (var d in dispatches.Values) d.Dispose();
        moe?.Dispose(); denseMlp?.Dispose(); next?.Gate.Dispose();
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
