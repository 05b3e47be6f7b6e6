namespace MoeCluster.Runtime.Hosting;

/// <summary>ActorRegistry keys for the runtime's well-known actors.</summary>
public sealed class GatewayKey;
public sealed class ExpertRegionKey;
public sealed class AttentionRegionKey;
public sealed class PlacementWatcherKey;
public sealed class ReplicaDirectoryKey;
public sealed class ReplicationCoordinatorKey;
