namespace MoeCluster.Runtime.Protocol;

// Hot-expert replication. None of these carry tensors, so they use Akka's default serializer; collections are arrays
// and dictionaries of strings so they round-trip through it unchanged.

/// <summary>Replication coordinator → the expert host of a node: load a redundant replica of <c>ExpertId</c> there.
/// Answered with <see cref="ReplicaLoaded"/> only once its weights are loaded (load first, then traffic switches).
/// Idempotent: a replica already loaded is answered at once.</summary>
public sealed record LoadReplica(string ExpertId);
public sealed record ReplicaLoaded(string ExpertId, string Node);

/// <summary>Replication coordinator → expert host: unload the node's replica of <c>ExpertId</c> after the rows already
/// queued for it; rows arriving later go to the primary through the shard region. Answered with <see cref="ReplicaDropped"/>.</summary>
public sealed record DropReplica(string ExpertId);
public sealed record ReplicaDropped(string ExpertId, string Node);

/// <summary>Which redundant replicas an expert host holds (a coordinator that took over adopts them).</summary>
public sealed record GetHostedReplicas;
public sealed record HostedReplicas(string Node, string[] ExpertIds);

/// <summary>Replication coordinator → every gateway node: the redundant replica nodes of each replicated expert
/// (entity id → node addresses, primary not included). Experts absent have no redundant replica.</summary>
public sealed record ReplicasChanged(Dictionary<string, string[]> Replicas);

/// <summary>Asks a gateway node for its directory's replica sets; answered with <see cref="ReplicaSets"/>
/// (entity id → nodes, primary first, for every placed expert).</summary>
public sealed record GetReplicaSets;
public sealed record ReplicaSets(Dictionary<string, string[]> Replicas);
