using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
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
    IExpertCompute? expert;
    long parameterBytes;

    public static Props Props(string entityId, ModelSource model) => Akka.Actor.Props.Create(() => new ExpertActor(entityId, model));

    public ExpertActor(string entityId, ModelSource model)
    {
        key = ExpertKey.Parse(entityId);
        this.model = model;
        Receive<StartExpert>(_ => Sender.Tell(new ExpertStarted(key.EntityId, Node, parameterBytes)));
        Receive<ComputeExpert>(Compute);
    }

    string Node => Cluster.Get(Context.System).SelfAddress.ToString();

    protected override void PreStart()
    {
        var c = model.Config;
        if (key.Layer < 0 || key.Layer >= c.NumLayers || !c.IsMoeLayer(key.Layer) || key.Expert < 0 || key.Expert >= c.NumExperts)
            throw new ArgumentException($"expert {key} does not exist in {model.Directory}");
        var module = ExpertMlp.Routed(c, model.Options);
        parameterBytes = model.Load(module, model.Names.ExpertPrefix(key.Layer, key.Expert));
        expert = module;
        log.Debug("expert {0} loaded ({1} bytes)", key, parameterBytes);
    }

    void Compute(ComputeExpert m)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = m.Input.Take(model.Options.Device);
        var y = expert!.Forward(x);
        Sender.Tell(new ExpertComputed(key.EntityId, m.CorrelationId, TensorPayload.Own(y)));
    }

    protected override void PostStop()
    {
        expert?.Dispose();
        expert = null;
        log.Debug("expert {0} released", key);
    }
}
