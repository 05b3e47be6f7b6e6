using Akka.Actor;
using Akka.Cluster.Sharding;

namespace MoeCluster.Node.Jobs;

/// <summary>Where jobs live in a single process (--engine local, no cluster): what the job shard region is in a
/// cluster — one child <see cref="JobActor"/> per job id, started by the first message for it, stopped when it
/// passivates.</summary>
public sealed class LocalJobHostActor : ReceiveActor
{
    public static Props Props(Func<string, Props> jobProps) => Akka.Actor.Props.Create(() => new LocalJobHostActor(jobProps));

    public LocalJobHostActor(Func<string, Props> jobProps)
    {
        Receive<IJobMessage>(m =>
        {
            var name = "job-" + Uri.EscapeDataString(m.JobId);
            var child = Context.Child(name);
            if (child.IsNobody()) child = Context.ActorOf(jobProps(m.JobId), name);
            child.Forward(m);
        });
        Receive<Passivate>(p => Sender.Tell(p.StopMessage));
    }

    /// <summary>A job whose journal write failed stops (Akka.Persistence's rule); it restarts on the next message,
    /// at the latest the directory's next wake.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);
}
