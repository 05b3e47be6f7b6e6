using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Cluster;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

public class ClusterTlsSpec
{
    static string Certificate(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        var path = Path.Combine(Path.GetTempPath(), $"moecluster-{name}-{Guid.NewGuid():N}.pfx");
        File.WriteAllBytes(path, cert.Export(X509ContentType.Pkcs12, "secret"));
        return path;
    }

    [Fact]
    public async Task Nodes_with_the_cluster_certificate_form_a_cluster_and_a_node_without_it_cannot_join()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = new BatchingOptions { MaxBatchSize = 2, ContextLength = 32 } };
        string good = Certificate("cluster"), stranger = Certificate("stranger");
        int[] ports = [FreePorts.Next(), FreePorts.Next(), FreePorts.Next()];
        var seed = $"akka.tcp://moecluster@127.0.0.1:{ports[0]}";
        var nodes = new List<InProcessNode>();
        try
        {
            nodes.Add(await InProcessNode.StartAsync(checkpoint, runtime, ports[0], [seed], o => o with { TlsCertificatePath = good, TlsCertificatePassword = "secret" }));
            nodes.Add(await InProcessNode.StartAsync(checkpoint, runtime with { Roles = [NodeRoles.Expert] }, ports[1], [seed], o => o with { TlsCertificatePath = good, TlsCertificatePassword = "secret" }));
            var cluster = Cluster.Get(nodes[0].System);
            await Poll.UntilAsync(() => cluster.State.Members.Count(m => m.Status == MemberStatus.Up) == 2, TimeSpan.FromSeconds(30), "two TLS nodes up");
            // The encrypted cluster serves.
            var service = await nodes[0].WaitUntilReadyAsync();
            Assert.Equal(3, (await service.GenerateToEndAsync(new GenerationRequest("tls", [1, 2, 3], 3))).Generated.Count);

            nodes.Add(await InProcessNode.StartAsync(checkpoint, runtime with { Roles = [NodeRoles.Expert] }, ports[2], [seed], o => o with { TlsCertificatePath = stranger, TlsCertificatePassword = "secret" }));
            var strangerCluster = Cluster.Get(nodes[2].System);
            // Give the stranger ample time to try: its join attempts are refused during the TLS handshake.
            var window = TimeSpan.FromSeconds(12);
            var until = DateTime.UtcNow + window;
            while (DateTime.UtcNow < until)
            {
                Assert.DoesNotContain(cluster.State.Members, m => m.Address.Port == ports[2]);
                Assert.NotEqual(MemberStatus.Up, strangerCluster.SelfMember.Status);
                await Task.Delay(250);
            }
            Assert.Equal(2, cluster.State.Members.Count);
        }
        finally
        {
            foreach (var n in Enumerable.Reverse(nodes)) await n.DisposeAsync();
        }
    }
}
