using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Experts;

/// <summary>One logical expert (a sharding entity): loads only its own weights when it starts, runs the model's expert
/// compute (<see cref="IExpertCompute"/>) on whatever rows it is sent, and releases the weights when it stops (hand-off, node leaving).</summary>
public sealed class ExpertActor : ReceiveActor
{
    readonly ExpertKey key;
    readonly ModelSource model;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly HostedExperts hosted = HostedExperts.Get(Context.System);
    readonly string[] rowLabels;
    IExpertCompute? expert;
    long parameterBytes;

    public static Props Props(string entityId, ModelSource model) => Akka.Actor.Props.Create(() => new ExpertActor(entityId, model));

    public ExpertActor(string entityId, ModelSource model)
    {
        key = ExpertKey.Parse(entityId);
        this.model = model;
        var c = model.Config;
        rowLabels = [key.Layer.ToString(), (long)c.NumLayers * c.NumExperts <= MoeMetrics.ExpertSeriesLimit ? key.Expert.ToString() : "all"];
        Receive<StartExpert>(_ => Sender.Tell(new ExpertStarted(key.EntityId, Node, parameterBytes)));
        Receive<ComputeExpert>(Compute);
    }

    string Node => Cluster.Get(Context.System).SelfAddress.ToString();

    protected override void PreStart()
    {
        var c = model.Config;
        if (key.Layer < 0 || key.Layer >= c.NumLayers || !c.IsMoeLayer(key.Layer) || key.Expert < 0 || key.Expert >= c.NumExperts)
            throw new ArgumentException($"expert {key} does not exist in {model.Directory}");
        hosted.StartedLoading(Self.Path.ToStringWithoutAddress());
        var module = ExpertMlp.Routed(c, model.Options);
        parameterBytes = model.Load(module, model.Names.ExpertPrefix(key.Layer, key.Expert));
        expert = module;
        hosted.FinishedLoading(Self.Path.ToStringWithoutAddress(), parameterBytes);
        log.Debug("expert {0} loaded ({1} bytes)", key, parameterBytes);
    }

    void Compute(ComputeExpert m)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // Converted to this node's dtype on arrival; the receiver of the output converts it to its own.
        var x = m.Input.Take(model.Options);
        var y = expert!.Forward(x);
        MoeMetrics.ExpertComputedRows.WithLabels(rowLabels).Inc(x.shape[0]);
        Sender.Tell(new ExpertComputed(key.EntityId, m.CorrelationId, TensorPayload.Own(y)));
        MoeMetrics.ExpertComputeSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    protected override void PostStop()
    {
        expert?.Dispose();
        expert = null;
        hosted.Released(Self.Path.ToStringWithoutAddress());
        log.Debug("expert {0} released", key);
    }
}
