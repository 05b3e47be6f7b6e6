using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Cluster;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Hosting;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>Issue 11.6, program side: plain-TCP remoting on a reachable interface is refused unless the network is
/// declared trusted, and the PEM certificate and key the Helm chart generates (a node certificate signed by a cluster
/// CA) secure a cluster.</summary>
public class SecureByDefaultSpec
{
    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("10.1.2.3")]
    public void Remoting_on_a_reachable_interface_without_tls_is_refused_unless_the_network_is_trusted(string host)
    {
        var error = Assert.Throws<ArgumentException>(() => new ClusterNodeOptions { Hostname = host }.CheckSecure());
        Assert.Contains("without TLS", error.Message);
        Assert.Contains("--trusted-network", error.Message);
        new ClusterNodeOptions { Hostname = host, TrustedNetwork = true }.CheckSecure();
        new ClusterNodeOptions { Hostname = host, TlsCertificatePath = "cluster.pfx" }.CheckSecure();
        new ClusterNodeOptions { Hostname = "127.0.0.1" }.CheckSecure();
        new ClusterNodeOptions { Hostname = "localhost" }.CheckSecure();
    }

    /// <summary>What the chart's genCA + genSignedCert produce: a CA and a node certificate it signed, both PEM.</summary>
    static (string Cert, string Key) PemNodeCertificate()
    {
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=moecluster-ca", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=moecluster-node", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var node = request.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), [1, 2, 3, 4]);
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-pem-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tls.crt"), node.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir, "tls.key"), key.ExportRSAPrivateKeyPem());
        return (Path.Combine(dir, "tls.crt"), Path.Combine(dir, "tls.key"));
    }

    [Fact]
    public async Task Nodes_with_the_charts_pem_certificate_and_key_form_a_tls_cluster_that_serves()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = new BatchingOptions { MaxBatchSize = 2, ContextLength = 32 } };
        var (cert, key) = PemNodeCertificate();
        int[] ports = [FreePorts.Next(), FreePorts.Next()];
        var seed = $"akka.tcp://moecluster@127.0.0.1:{ports[0]}";
        ClusterNodeOptions Tls(ClusterNodeOptions o) => o with { TlsCertificatePath = cert, TlsKeyPath = key };
        var nodes = new List<InProcessNode>();
        try
        {
            nodes.Add(await InProcessNode.StartAsync(checkpoint, runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention] }, ports[0], [seed], Tls));
            nodes.Add(await InProcessNode.StartAsync(checkpoint, runtime with { Roles = [NodeRoles.Expert] }, ports[1], [seed], Tls));
            Assert.StartsWith("akka.ssl.tcp://", Cluster.Get(nodes[0].System).SelfAddress.ToString());
            var service = await nodes[0].WaitUntilReadyAsync();
            Assert.Equal(3, (await service.GenerateToEndAsync(new GenerationRequest("pem", [1, 2, 3], 3))).Generated.Count);
        }
        finally { foreach (var n in Enumerable.Reverse(nodes)) await n.DisposeAsync(); }
    }
}
