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
    /// <summary>Certificate enabling TLS between nodes (null = plain TCP): a PKCS#12 file (password in
    /// <see cref="TlsCertificatePassword"/>), or a PEM certificate with its PEM key in <see cref="TlsKeyPath"/> (what
    /// the Helm chart generates and cert-manager writes: tls.crt, tls.key).</summary>
    public string? TlsCertificatePath { get; init; }
    public string? TlsCertificatePassword { get; init; }
    public string? TlsKeyPath { get; init; }
    /// <summary>Remoting may bind a non-loopback interface without TLS only when this says the network is trusted
    /// (anything reaching the remoting port can otherwise join the cluster and read every prompt's activations).</summary>
    public bool TrustedNetwork { get; init; }
    /// <summary>Akka log level: DEBUG, INFO (default), WARNING, ERROR.</summary>
    public string LogLevel { get; init; } = "INFO";
    /// <summary>Further certificate thumbprints accepted from peers (certificate rotation); the node's own is always accepted.</summary>
    public IReadOnlyList<string> TrustedThumbprints { get; init; } = [];
    /// <summary>dtype of float32 activations on the wire between nodes: null sends them as computed, "bfloat16"
    /// halves the bytes per token (each receiver converts to its compute dtype on arrival).</summary>
    public string? WireDType { get; init; }

    public string SelfAddress => $"{Protocol}://{ActorSystemName}@{PublicHostname ?? Hostname}:{Port}";

    /// <summary>127.0.0.0/8, ::1 or localhost: reachable from this machine only.</summary>
    public bool BindsLoopbackOnly => Hostname == "localhost" || System.Net.IPAddress.TryParse(Hostname, out var ip) && System.Net.IPAddress.IsLoopback(ip);

    /// <summary>Refuses plain-TCP remoting on an interface other machines can reach, unless <see cref="TrustedNetwork"/>.</summary>
    public void CheckSecure()
    {
        if (TlsCertificatePath is null && !BindsLoopbackOnly && !TrustedNetwork)
            throw new ArgumentException(
                $"remoting would listen on {Hostname}:{Port} without TLS: any host reaching that port could join the cluster and read every prompt's activations. " +
                "Give --tls-certificate (PKCS#12, or PEM with --tls-key), bind --hostname 127.0.0.1, or pass --trusted-network if this network is private to the cluster.");
    }

    /// <summary>akka.ssl.tcp when TLS is on, else akka.tcp.</summary>
    public string Protocol => TlsCertificatePath is null ? "akka.tcp" : "akka.ssl.tcp";

    /// <summary>Seed addresses may be written with either protocol; they are used with this node's.</summary>
    public string WithProtocol(string address)
    {
        int at = address.IndexOf("://", StringComparison.Ordinal);
        return at < 0 ? address : Protocol + address[at..];
    }
}
