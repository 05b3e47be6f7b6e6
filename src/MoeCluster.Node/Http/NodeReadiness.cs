using Akka.Actor;
using Akka.Cluster;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

public sealed record ReadinessReport(string Status, bool Ready, int Waiting, int Running, string Detail)
{
    public static ReadinessReport NotReady(string detail) => new("not_ready", false, 0, 0, detail);
}

/// <summary>What GET /readyz reports: whether this node can do its job now.</summary>
public interface INodeReadiness
{
    Task<ReadinessReport> CheckAsync(CancellationToken cancellation);
}

/// <summary>Ready when the generation engine says it can run a step (the single-process engine, or a gateway).</summary>
public sealed class GenerationReadiness(IGenerationService generation) : INodeReadiness
{
    public async Task<ReadinessReport> CheckAsync(CancellationToken cancellation)
    {
        var status = await generation.GetStatusAsync(cancellation);
        return new ReadinessReport(status.Ready ? "ready" : "not_ready", status.Ready, status.Waiting, status.Running, status.Detail);
    }
}

/// <summary>Readiness of a cluster node, by its roles: every node must be an Up member; an expert node must have
/// loaded every expert placed on it (none still reading weights); a gateway must be able to run a step (every
/// attention layer and expert started and placed). A node with several roles is ready when each role is.</summary>
public sealed class ClusterNodeReadiness(ActorSystem system, IReadOnlyList<string> roles, Func<IGenerationService?> gateway) : INodeReadiness
{
    public async Task<ReadinessReport> CheckAsync(CancellationToken cancellation)
    {
        var self = Cluster.Get(system).SelfMember;
        if (self.Status != MemberStatus.Up)
            return ReadinessReport.NotReady($"this node is {self.Status.ToString().ToLowerInvariant()} in the cluster, not up");
        if (roles.Contains(NodeRoles.Expert) && HostedExperts.Get(system) is { Loading: > 0 } experts)
            return ReadinessReport.NotReady($"loading the weights of {experts.Loading} experts placed on this node ({experts.Loaded} loaded)");
        if (roles.Contains(NodeRoles.Gateway) && gateway() is { } generation)
            return await new GenerationReadiness(generation).CheckAsync(cancellation);
        var hosted = HostedExperts.Get(system);
        return new ReadinessReport("ready", true, 0, 0,
            roles.Contains(NodeRoles.Expert) ? $"up; {hosted.Loaded} experts loaded ({hosted.WeightBytes} bytes)" : "up");
    }
}
