using Akka.Actor;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Replication;

/// <summary>On every gateway node, at /user/replica-directory: applies the replication coordinator's replica sets to
/// the node's <see cref="ExpertDirectory"/> (the routers read them on their next step) and answers
/// <see cref="GetReplicaSets"/> with what the routers see.</summary>
public sealed class ReplicaDirectoryActor : ReceiveActor
{
    public const string Name = "replica-directory";

    public static Props Props(ExpertDirectory directory) => Akka.Actor.Props.Create(() => new ReplicaDirectoryActor(directory));

    public ReplicaDirectoryActor(ExpertDirectory directory)
    {
        Receive<ReplicasChanged>(m => directory.ReplaceReplicas(m.Replicas));
        Receive<GetReplicaSets>(_ => Sender.Tell(new ReplicaSets(
            directory.Placement.Keys.ToDictionary(id => id, id => directory.ReplicasOf(id).ToArray()))));
    }
}
