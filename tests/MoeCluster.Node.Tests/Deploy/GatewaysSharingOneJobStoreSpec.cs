using System.Net.Http.Headers;
using System.Text.Json;
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
            var job = Enumerable.Range(0, total).Select(i => JsonSerializer.Serialize(new { model = name, prompt = new[] { 4 + i % 80, 8, 15 }, max_tokens = 40, temperature = 0, ignore_eos = true }));
            using var content = new StringContent(string.Join("\n", job) + "\n");
            content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
            using var submitted = await http.PostAsync(new Uri(gateways[1].BaseAddress, "v1/jobs"), content);
            Assert.True(submitted.IsSuccessStatusCode, await submitted.Content.ReadAsStringAsync());
            string id = (string)JsonNode.Parse(await submitted.Content.ReadAsStringAsync())!["id"]!;
            JsonNode? status = null;
            await Poll.UntilAsync(async () => (int)(status = await gateways[0].GetJsonAsync(http, $"v1/jobs/{id}"))["completed"]! >= 1,
                TimeSpan.FromSeconds(120), "a first line done");
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
            var results = (await http.GetStringAsync(new Uri(survivor.BaseAddress, $"v1/jobs/{id}/results")))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
            JobsClient.AssertOneResultPerLineInOrder(results, total);
            Assert.All(results, r => Assert.NotNull(r["response"]));
            // One JobSubmitted and exactly one LineCompleted per line in the shared journal: nothing answered twice.
            Assert.Equal(1 + total, cluster.JournalEvents(id));
        }
        catch (Exception)
        {
            cluster.WriteLogs(output);
            throw;
        }
    }
}
