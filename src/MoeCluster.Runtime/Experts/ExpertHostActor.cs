using Akka.Actor;
using Akka.Cluster;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>One per expert node, at /user/expert-host. Receives a router's per-node batch (<see cref="DispatchTokens"/>),
/// hands each item to its expert entity through the node's shard region (local delivery, tensors not copied), gathers
/// the outputs and answers with one <see cref="TokensComputed"/>. If an expert has moved away, the region forwards the
/// item to its new home; the router's timeout covers anything that never answers.</summary>
public sealed class ExpertHostActor : ReceiveActor
{
    public const string Name = "expert-host";

    sealed class Pending(IActorRef router, DispatchTokens request)
    {
        public IActorRef Router { get; } = router;
        public DispatchTokens Request { get; } = request;
        public readonly ExpertInput?[] Outputs = new ExpertInput?[request.Items.Count];
        public int Remaining = request.Items.Count;
    }

    readonly IActorRef expertRegion;
    readonly Dictionary<long, (Pending pending, int index)> inFlight = new();
    readonly string node;
    long nextCorrelation;

    public static Props Props(IActorRef expertRegion) => Akka.Actor.Props.Create(() => new ExpertHostActor(expertRegion));

    public ExpertHostActor(IActorRef expertRegion)
    {
        this.expertRegion = expertRegion;
        node = Cluster.Get(Context.System).SelfAddress.ToString();
        Receive<DispatchTokens>(Dispatch);
        Receive<ExpertComputed>(Collect);
    }

    void Dispatch(DispatchTokens m)
    {
        var pending = new Pending(Sender, m);
        for (int i = 0; i < m.Items.Count; i++)
        {
            long correlation = ++nextCorrelation;
            inFlight[correlation] = (pending, i);
            var key = new ExpertKey(m.Layer, m.Items[i].Expert);
            expertRegion.Tell(new ComputeExpert(key.EntityId, correlation, m.Items[i].Rows));
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
        var (pending, index) = entry;
        pending.Outputs[index] = new ExpertInput(pending.Request.Items[index].Expert, m.Output);
        if (--pending.Remaining > 0) return;
        pending.Router.Tell(new TokensComputed(pending.Request.DispatchId, pending.Request.Layer, pending.Outputs!, node));
    }
}
