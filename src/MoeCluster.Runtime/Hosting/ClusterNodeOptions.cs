namespace MoeCluster.Runtime.Hosting;

/// <summary>Where this node listens and whom it joins.</summary>
public sealed record ClusterNodeOptions
{
    public const string ActorSystemName = "moecluster";

    /// <summary>Interface to bind remoting to.</summary>
    public string Hostname { get; init; } = "127.0.0.1";
    /// <summary>Address other nodes use to reach this one (a pod's stable DNS name in Kubernetes).</summary>
    public string? PublicHostname { get; init; }
    public int Port { get; init; } = 4053;
    /// <summary>akka.tcp://moecluster@host:port addresses; empty means this node is its own seed (a one-node cluster).</summary>
    public IReadOnlyList<string> SeedNodes { get; init; } = [];
    /// <summary>How long the split-brain resolver waits for membership to be stable before downing unreachable nodes
    /// (keep-majority). 20 s as Akka.NET recommends; tests of failover use a few seconds.</summary>
    public TimeSpan DowningStableAfter { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>Largest remote message. Must hold one step's activations for one node: prefill tokens × top-k × hidden × 4 bytes.</summary>
    public long MaxFrameBytes { get; init; } = 16 * 1024 * 1024;
    /// <summary>PKCS#12 certificate enabling TLS between nodes (null = plain TCP).</summary>
    public string? TlsCertificatePath { get; init; }
    public string? TlsCertificatePassword { get; init; }
    /// <summary>Akka log level: DEBUG, INFO (default), WARNING, ERROR.</summary>
    public string LogLevel { get; init; } = "INFO";
    /// <summary>Further certificate thumbprints accepted from peers (certificate rotation); the node's own is always accepted.</summary>
    public IReadOnlyList<string> TrustedThumbprints { get; init; } = [];

    public string SelfAddress => $"{Protocol}://{ActorSystemName}@{PublicHostname ?? Hostname}:{Port}";

    /// <summary>akka.ssl.tcp when TLS is on, else akka.tcp.</summary>
    public string Protocol => TlsCertificatePath is null ? "akka.tcp" : "akka.ssl.tcp";

    /// <summary>Seed addresses may be written with either protocol; they are used with this node's.</summary>
    public string WithProtocol(string address)
    {
        int at = address.IndexOf("://", StringComparison.Ordinal);
        return at < 0 ? address : Protocol + address[at..];
    }
}
