using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Experts;

/// <summary>One logical expert (a sharding entity): loads only its own weights when it starts, runs the model's expert
/// compute (<see cref="IExpertCompute"/>) on whatever rows it is sent, and releases the weights when it stops (hand-off,
/// node leaving). A computation that throws (out of memory, rows of the wrong width) is answered with
/// <see cref="ExpertFailed"/> at once; the entity keeps running, so a bad input never restarts it.</summary>
public sealed class ExpertActor : ReceiveActor
{
    readonly ExpertKey key;
    readonly ModelSource model;
    readonly FaultInjector? faults;
    readonly ILoggingAdapter log = Context.GetLogger();
    IExpertCompute? expert;
    long parameterBytes;

    public static Props Props(string entityId, ModelSource model, FaultInjector? faults = null) =>
        Akka.Actor.Props.Create(() => new ExpertActor(entityId, model, faults));

    public ExpertActor(string entityId, ModelSource model, FaultInjector? faults)
    {
        key = ExpertKey.Parse(entityId);
        this.model = model;
        this.faults = faults;
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
        try
        {
            var x = m.Input.Take(model.Options.Device);
            if (x.dim() != 2 || x.shape[1] != model.Config.HiddenSize)
            {
                MoeMetrics.FrameRejected(FrameRejection.Inconsistent);
                throw new ArgumentException($"rows [{string.Join(", ", x.shape)}] are not [n, {model.Config.HiddenSize}]");
            }
            faults?.ThrowIfArmed(FaultSite.Expert, key.EntityId);
            var y = expert!.Forward(x);
            Sender.Tell(new ExpertComputed(key.EntityId, m.CorrelationId, TensorPayload.Own(y)));
        }
        catch (Exception e)
        {
            log.Warning("expert {0} failed: {1}", key, e.Message);
            Sender.Tell(new ExpertFailed(key.EntityId, m.CorrelationId, $"expert {key}: {e.Message}"));
        }
    }

    protected override void PostStop()
    {
        expert?.Dispose();
        expert = null;
        log.Debug("expert {0} released", key);
    }
}
