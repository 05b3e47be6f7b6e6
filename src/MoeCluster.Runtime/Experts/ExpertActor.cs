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

/// <summary>One logical expert (a sharding entity): loads only its own weights when it starts (through the node's
/// <see cref="ExpertLoader"/>: in int8 when planned, or paged in on demand when the node keeps a resident set), runs
/// the model's expert compute (<see cref="IExpertCompute"/>) on whatever rows it is sent, and releases the weights when
/// it stops (hand-off, node leaving). A computation that throws (out of memory, rows of the wrong width) is answered with
/// <see cref="ExpertFailed"/> at once; the entity keeps running, so a bad input never restarts it.</summary>
public sealed class ExpertActor : ReceiveActor
{
    readonly ExpertKey key;
    readonly ModelSource model;
    readonly ExpertLoader loader;
    readonly FaultInjector? faults;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly HostedExperts hosted = HostedExperts.Get(Context.System);
    readonly string[] rowLabels;
    IExpertCompute? expert;
    long parameterBytes;

    public static Props Props(string entityId, ModelSource model, FaultInjector? faults = null, ExpertLoader? loader = null) =>
        Akka.Actor.Props.Create(() => new ExpertActor(entityId, model, faults, loader));

    public ExpertActor(string entityId, ModelSource model, FaultInjector? faults, ExpertLoader? loader)
    {
        key = ExpertKey.Parse(entityId);
        this.model = model;
        this.loader = loader ?? new ExpertLoader(model);
        var config = model.Config;
        rowLabels = [key.Layer.ToString(), (long)config.NumLayers * config.NumExperts <= MoeMetrics.ExpertSeriesLimit ? key.Expert.ToString() : "all"];
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
        hosted.StartedLoading(Self.Path.ToStringWithoutAddress());
        expert = loader.Create(key);
        parameterBytes = expert.ParameterBytes;
        // A paged expert's weights belong to the node's resident set (counted by moecluster_expert_memory_bytes
        // while in memory), not to this entity.
        hosted.FinishedLoading(Self.Path.ToStringWithoutAddress(), loader.Resident is null ? parameterBytes : 0);
        log.Debug("expert {0} loaded ({1} bytes{2})", key, parameterBytes, loader.IsInt8(key) ? ", int8" : "");
    }

    void Compute(ComputeExpert m)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        try
        {
            // Converted to this node's dtype on arrival; the receiver of the output converts it to its own.
            var x = m.Input.Take(model.Options);
            if (x.dim() != 2 || x.shape[1] != model.Config.HiddenSize)
            {
                MoeMetrics.FrameRejected(FrameRejection.Inconsistent);
                throw new ArgumentException($"rows [{string.Join(", ", x.shape)}] are not [n, {model.Config.HiddenSize}]");
            }
            faults?.ThrowIfArmed(FaultSite.Expert, key.EntityId);
            var y = expert!.Forward(x);
            MoeMetrics.ExpertComputedRows.WithLabels(rowLabels).Inc(x.shape[0]);
            Sender.Tell(new ExpertComputed(key.EntityId, m.CorrelationId, TensorPayload.Own(y)));
            MoeMetrics.ExpertComputeSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
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
        hosted.Released(Self.Path.ToStringWithoutAddress());
        log.Debug("expert {0} released", key);
    }
}
