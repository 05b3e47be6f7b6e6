using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Deploy;

/// <summary>The shared PostgreSQL journal of a cluster goes down mid-job, end to end with real processes: a gateway
/// process (jobs as sharding entities, the directory a cluster singleton under its backoff supervisor) and an
/// attention + expert process, on a PostgreSQL server of the test's own that it stops and starts. While the server is
/// down the gateway is not ready and the job API answers 503 naming the server; once it is back the gateway is ready
/// again without a restart and the job ends with exactly one persisted result per line.</summary>
public sealed class SharedJournalOutageSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task A_job_survives_its_shared_PostgreSQL_journal_stopping_and_starting_with_one_result_per_line()
    {
        var postgres = new PrivatePostgres();
        using var cluster = new SharedJournalCluster(1, postgres, ["--job-batch-share", "1"]);
        var (gateway, http) = (cluster.Gateways[0], cluster.Http);
        try
        {
            await cluster.WaitUntilReadyAsync();
            const int total = 32;
            var (id, _) = await cluster.SubmitJobAsync(gateway, total, maxTokens: 24, i => [4 + i % 80, 8, 15]);

            long persistedAtStop = cluster.JournalEvents(id) - 1;
            Assert.InRange(persistedAtStop, 1, total - 1);
            postgres.Stop();
            // A line finishing after the stop fails its journal write: the gateway counts it.
            await Poll.UntilAsync(async () => EveryNodeObservableSpec.Value(await http.GetStringAsync(new Uri(gateway.BaseAddress, "metrics")),
                "moecluster_job_store_failures_total{kind=\"unreachable\",operation=\"write\"}") > 0,
                TimeSpan.FromSeconds(30), "a journal write failing on the gateway");
            JsonNode? readiness = null;
            await Poll.UntilAsync(async () =>
            {
                using var r = await http.GetAsync(new Uri(gateway.BaseAddress, "readyz"));
                readiness = JsonNode.Parse(await r.Content.ReadAsStringAsync());
                return (int)r.StatusCode == 503;
            }, TimeSpan.FromSeconds(30), "the gateway not ready with PostgreSQL stopped");
            output.WriteLine($"PostgreSQL stopped after {persistedAtStop} of {total} lines; /readyz: {readiness!["detail"]}");
            Assert.Contains("job store unusable: PostgreSQL unreachable", (string)readiness["detail"]!);
            using (var refused = await http.GetAsync(new Uri(gateway.BaseAddress, $"v1/jobs/{id}")))
            {
                var body = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!;
                Assert.True((int)refused.StatusCode == 503, $"GET /v1/jobs/{id} with PostgreSQL stopped: {(int)refused.StatusCode} {body}");
                Assert.Equal("job_store_unavailable", (string?)body["error"]!["code"]);
                Assert.Contains($"127.0.0.1:{postgres.Port}", (string)body["error"]!["message"]!);
            }

            var clock = System.Diagnostics.Stopwatch.StartNew();
            postgres.Start();
            await gateway.WaitForAsync(http, "readyz", TimeSpan.FromSeconds(30));
            output.WriteLine($"PostgreSQL started: gateway ready after {clock.Elapsed.TotalSeconds:0.0} s");
            JsonNode? status = null;
            await Poll.UntilAsync(async () => (string)(status = await gateway.GetJsonAsync(http, $"v1/jobs/{id}"))["status"]! == "completed",
                TimeSpan.FromSeconds(120), "the job completed after PostgreSQL came back");
            output.WriteLine($"job completed {clock.Elapsed.TotalSeconds:0.0} s after PostgreSQL started");
            await cluster.AssertEveryLineAnsweredOnceAsync(gateway, id, total);
        }
        catch (Exception)
        {
            cluster.WriteLogs(output);
            throw;
        }
    }
}
