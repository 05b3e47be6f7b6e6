using MoeCluster.Runtime;
using MoeCluster.Runtime.Hosting;

namespace MoeCluster.Node;

/// <summary>Everything `moecluster serve` needs, after resolving flags, environment and config file.</summary>
public sealed record ServeOptions
{
    public required ClusterNodeOptions Cluster { get; init; }
    public required RuntimeOptions Runtime { get; init; }
    public string HttpHost { get; init; } = "0.0.0.0";
    public int HttpPort { get; init; } = NodeDefaults.HttpPort;
    /// <summary>"cluster" (default): this process is a node of an Akka cluster. "local": one process, no cluster.</summary>
    public string Engine { get; init; } = "cluster";
    public string? DataDirectory { get; init; }
    public string? JournalConnectionString { get; init; }
    public IReadOnlyList<string> ApiKeys { get; init; } = [];
    public TimeSpan JobRetention { get; init; } = TimeSpan.FromDays(30);
    public double JobBatchShare { get; init; } = 0.5;
    public int MaxConcurrentUploads { get; init; } = 4;
    /// <summary>On SIGTERM, how long a gateway lets its running sequences finish before failing them.</summary>
    public TimeSpan DrainGrace { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>--chat-template: a Jinja file (or the template text) used instead of the checkpoint's chat template.</summary>
    public string? ChatTemplate { get; init; }
    public bool ServesApi => Engine == "local" || Runtime.Roles.Contains(NodeRoles.Gateway);
}
