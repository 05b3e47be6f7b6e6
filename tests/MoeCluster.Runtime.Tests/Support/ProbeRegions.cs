using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Protocol;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests.Support;

/// <summary>
/// A real <see cref="GatewayActor"/> (and its real routers) whose attention and expert shard regions are TestKit probes.
/// The probes start every entity at once, and by default compute each layer as the identity (attention returns its input
/// as residual and normed rows, an expert returns its rows), so steps run and finish; a test changes what a probe
/// answers with <see cref="OnAttention"/> and <see cref="OnExpert"/>. The test system is a one-node cluster with
/// every role, so the gateway sees an expert member up.
/// </summary>
public sealed class ProbeRegions : IDisposable
{
    public static readonly Config ClusterConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
        akka.cluster.roles = [gateway, attention, expert]
        """);

    /// <summary>What the attention probe answers to a step (null: nothing, the step hangs). Default: the identity.</summary>
    public Func<AttentionStep, object?> OnAttention { get; set; } = Identity;
    /// <summary>What the expert probe answers to a ComputeExpert (null: nothing). Default: the rows themselves.</summary>
    public Func<ComputeExpert, object?> OnExpert { get; set; } = m => new ExpertComputed(m.ExpertId, m.CorrelationId, TensorPayload.Own(m.Input.Take()));
    /// <summary>The node each expert answers StartExpert from.</summary>
    public Func<string, string> ExpertNode { get; set; } = _ => "akka.tcp://moecluster@10.0.0.1:4053";

    public TestProbe Attention { get; }
    public TestProbe Experts { get; }
    public ModelSource Model { get; }
    public IActorRef Gateway { get; }
    public IGenerationService Service { get; }
    readonly string checkpoint;

    /// <param name="restartOnFailure">run the gateway under a parent that restarts it on any failure (Akka's default
    /// for a top-level actor stops it on <see cref="Kill"/>)</param>
    public ProbeRegions(TestKitBase kit, RuntimeOptions? runtime = null, bool restartOnFailure = false)
    {
        using (var model = TinyModels.Random(Architecture.Mixtral)) checkpoint = TinyCheckpoint.Write(model);
        Model = new ModelSource(checkpoint, ModuleOptions.Cpu32);
        var options = (runtime ?? new RuntimeOptions { ModelDirectory = checkpoint }) with { ModelDirectory = checkpoint };
        var cluster = Cluster.Get(kit.Sys);
        cluster.Join(cluster.SelfAddress);
        kit.AwaitCondition(() => cluster.SelfMember.Status == MemberStatus.Up, TimeSpan.FromSeconds(20));

        Attention = kit.CreateTestProbe("attention-region");
        Experts = kit.CreateTestProbe("expert-region");
        Attention.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
        {
            switch (message)
            {
                case StartAttention s: sender.Tell(new AttentionStarted(s.EntityId, cluster.SelfAddress.ToString(), 1024)); break;
                case AttentionStep s when OnAttention(s) is { } reply: sender.Tell(reply); break;
            }
            return AutoPilot.KeepRunning;
        }));
        Experts.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
        {
            switch (message)
            {
                case StartExpert s: sender.Tell(new ExpertStarted(s.ExpertId, ExpertNode(s.ExpertId), 1024)); break;
                case ComputeExpert c when OnExpert(c) is { } reply: sender.Tell(reply); break;
            }
            return AutoPilot.KeepRunning;
        }));
        var props = GatewayActor.Props("gw-probe", Model, options, Attention.Ref, Experts.Ref, new ExpertDirectory());
        Gateway = restartOnFailure
            ? kit.Sys.ActorOf(Props.Create(() => new RestartingParent(props))).Ask<IActorRef>(RestartingParent.GetChild.Instance, TimeSpan.FromSeconds(10)).Result
            : kit.Sys.ActorOf(props, "gateway");
        Service = new ClusterGenerationService(kit.Sys, Gateway, Model.Config, options.RequestTimeout);
    }

    sealed class RestartingParent : ReceiveActor
    {
        public sealed class GetChild { public static readonly GetChild Instance = new(); }

        public RestartingParent(Props child)
        {
            var gateway = Context.ActorOf(child, GatewayActor.Name);
            Receive<GetChild>(_ => Sender.Tell(gateway));
        }

        protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Restart);
    }

    public static AttentionComputed Identity(AttentionStep m)
    {
        var x = m.Input.Take();
        return new AttentionComputed(m.StepId, AttentionEntity.Layer(m.EntityId), TensorPayload.Own(x.clone()), TensorPayload.Own(x));
    }

    public void Dispose()
    {
        Model.Dispose();
        try { Directory.Delete(checkpoint, recursive: true); }
        catch (IOException) { /* a leftover temp checkpoint is harmless */ }
    }
}
