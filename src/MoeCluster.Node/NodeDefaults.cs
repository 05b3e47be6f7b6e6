namespace MoeCluster.Node;

/// <summary>Ports and names a node uses unless told otherwise. The Dockerfile, the Helm chart and
/// deploy/local/cluster.sh rely on these values; tests check they agree.</summary>
public static class NodeDefaults
{
    /// <summary>The Akka.NET actor system name; every node of one cluster must use the same.</summary>
    public const string ActorSystemName = "moecluster";

    /// <summary>Akka.Remote (DotNetty TCP) port between nodes.</summary>
    public const int RemotingPort = 4053;

    /// <summary>HTTP port: OpenAI-compatible API, /healthz, /readyz and /metrics.</summary>
    public const int HttpPort = 8080;
}
