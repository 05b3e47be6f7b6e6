using MoeCluster.Placement;

namespace MoeCluster.Runtime.Replication;

/// <summary>Hot-expert replication, as <see cref="RuntimeOptions.Replication"/>. Off by default: replicas cost memory
/// on the expert nodes and only pay off when routing is skewed.</summary>
public sealed record HotExpertOptions
{
    /// <summary>Run the replication coordinator (a singleton on the gateway role).</summary>
    public bool Enabled { get; init; }
    /// <summary>How often the coordinator collects the routers' load and decides.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Load window in router steps (decode/prefill steps of the busiest gateway), as vLLM's EPLB window.</summary>
    public int WindowSteps { get; init; } = 1000;
    /// <summary>Longest wait for a router's load or for a replica to load its weights.</summary>
    public TimeSpan LoadTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Thresholds and limits of <see cref="ReplicationPlanner"/>.</summary>
    public ReplicationOptions Thresholds { get; init; } = new();
}
