using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Batches;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Deploy;

/// <summary>Issue 10.3 and 10.4 with real processes and a real PostgreSQL server: two gateway processes and one
/// attention + expert process share one cluster and one journal. A file uploaded to one gateway is batched, polled and
/// downloaded on the other (official OpenAI client); a job whose gateway is killed with SIGKILL mid-job is resumed by
/// the other gateway and ends with exactly one persisted result per line.</summary>
public sealed class GatewaysSharingOneJobStoreSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task Two_gateways_share_batches_and_the_survivor_resumes_a_job_whose_gateway_was_killed()
    {
        using var cluster = new SharedJournalCluster(2, "--job-batch-share", "1");
        var (gateways, http, name) = (cluster.Gateways, cluster.Http, cluster.ModelName);
        try
        {
            await cluster.WaitUntilReadyAsync();

            // Upload on A; create, poll and download on B.
            var a = new BatchClients(gateways[0].BaseAddress);
            var b = new BatchClients(gateways[1].BaseAddress);
            var file = await a.UploadAsync(Enumerable.Range(0, 6).Select(i => BatchClients.CompletionLine($"r{i}", name, [4 + i, 8, 15])));
            var created = await b.CreateAsync(file.Id, "/v1/completions");
            var batch = await a.WaitUntilEndedAsync((string)created["id"]!, TimeSpan.FromSeconds(120));
            Assert.Equal("completed", (string)batch["status"]!);
            var lines = await b.DownloadLinesAsync((string)batch["output_file_id"]!);
            Assert.Equal(Enumerable.Range(0, 6).Select(i => $"r{i}"), lines.Select(l => (string)l["custom_id"]!));
            var (listed, page) = await http.GetJsonAsync(new Uri(gateways[0].BaseAddress, "v1/batches").ToString());
            Assert.Equal(200, listed);
            Assert.Equal((string)created["id"]!, (string)page!["data"]![0]!["id"]!);

            // A long job; kill -9 the gateway running it, the other resumes it.
            const int total = 48;
            var (id, firstDone) = await cluster.SubmitJobAsync(gateways[1], total, maxTokens: 40, i => [4 + i % 80, 8, 15]);
            JsonNode? status = firstDone;
            var owner = gateways.Single(g => (string)status!["node"]! == g.Address);
            var survivor = gateways.Single(g => g != owner);
            owner.Kill();
            long persistedAtKill = cluster.JournalEvents(id) - 1;
            output.WriteLine($"killed {owner.Name} with {persistedAtKill} of {total} lines persisted");
            Assert.InRange(persistedAtKill, 1, total - 1);

            await Poll.UntilAsync(async () =>
            {
                try { status = await survivor.GetJsonAsync(http, $"v1/jobs/{id}"); }
                catch (HttpRequestException) { return false; }
                return (string)status!["status"]! == "completed";
            }, TimeSpan.FromSeconds(180), $"the job resumed on {survivor.Name}");
            Assert.Equal(survivor.Address, (string)status!["node"]!);
            await cluster.AssertEveryLineAnsweredOnceAsync(survivor, id, total);
        }
        catch (Exception)
        {
            cluster.WriteLogs(output);
            throw;
        }
    }
}
