using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Deploy;

/// <summary>Issue 10.5 with real processes: a rolling restart of one of two gateways under load. The gateway running a
/// job gets SIGTERM while clients keep sending requests to both (retrying on the other gateway after a 503 or a
/// refused connection, as a Service does): it turns not-ready, answers new requests 503 with Retry-After, lets running
/// ones finish, hands the job to the other gateway and exits; it then starts again and serves. No HTTP request hangs,
/// every request is eventually answered 200, and the job ends with exactly one persisted result per line.</summary>
public sealed class RollingRestartSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task SIGTERM_of_the_gateway_running_a_job_under_load_loses_no_line_and_leaves_no_request_hanging()
    {
        using var cluster = new SharedJournalCluster(2, "--drain-grace", "10");
        var (gateways, http, name) = (cluster.Gateways, cluster.Http, cluster.ModelName);
        try
        {
            await cluster.WaitUntilReadyAsync();
            const int total = 40;
            var (id, status) = await cluster.SubmitJobAsync(gateways[0], total, maxTokens: 40, i => [4 + i % 80, 8]);
            int owner = (string)status!["node"]! == gateways[0].Address ? 0 : 1;

            var load = new Load(gateways.Select(g => g.BaseAddress).ToArray(), name);
            var running = load.RunAsync(clients: 3);
            await Poll.UntilAsync(() => load.Succeeded >= 6, TimeSpan.FromSeconds(60), "load flowing through both gateways");

            // SIGTERM: not ready at once, then exit after draining and handing off.
            var stopping = gateways[owner].TerminateAsync(TimeSpan.FromSeconds(60));
            await Poll.UntilAsync(async () =>
            {
                try { using var r = await http.GetAsync(new Uri(gateways[owner].BaseAddress, "readyz")); return r.StatusCode == HttpStatusCode.ServiceUnavailable; }
                catch (HttpRequestException) { return true; }   // already gone
            }, TimeSpan.FromSeconds(30), "the stopping gateway reports not ready");
            var clock = Stopwatch.StartNew();
            await stopping;
            output.WriteLine($"gateway-{owner} exited {clock.Elapsed.TotalSeconds:0.0}s after turning not ready");
            await cluster.RestartGatewayAsync(owner);
            int before = load.Succeeded;
            await Poll.UntilAsync(() => load.Succeeded >= before + 6, TimeSpan.FromSeconds(60), "load flowing after the restart");
            load.Stop();
            await running;

            output.WriteLine($"requests: {load.Succeeded} answered 200, {load.Refused} refusals (503 or connection refused) retried on the other gateway, slowest {load.Slowest.TotalSeconds:0.0}s");
            Assert.Empty(load.Failures);
            Assert.True(load.Refused503WithRetryAfter || load.Refused503 == 0, "every 503 carried Retry-After");

            var survivor = gateways[1 - owner];
            await Poll.UntilAsync(async () => (string)(status = await survivor.GetJsonAsync(http, $"v1/jobs/{id}"))["status"]! == "completed",
                TimeSpan.FromSeconds(180), "the job finished after the hand-off");
            Assert.Equal(total, (int)status!["completed"]!);
            Assert.Equal(0, (int)status["failed"]!);
            Assert.Equal(1 + total, cluster.JournalEvents(id));
        }
        catch (Exception)
        {
            cluster.WriteLogs(output);
            throw;
        }
    }

    /// <summary>Clients sending completions round-robin over the gateways; a 503 or a refused connection is retried on
    /// the next gateway (what a Service in front of them does). A request that hangs past the client timeout, or gets
    /// anything else, is a failure.</summary>
    sealed class Load(Uri[] gateways, string model)
    {
        readonly CancellationTokenSource stop = new();
        readonly object gate = new();
        public List<string> Failures { get; } = [];
        public int Succeeded, Refused, Refused503;
        public bool Refused503WithRetryAfter = true;
        public TimeSpan Slowest;

        public void Stop() => stop.Cancel();

        public Task RunAsync(int clients) => Task.WhenAll(Enumerable.Range(0, clients).Select(Client));

        async Task Client(int c)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(45) };
            int next = c;
            for (int n = 0; !stop.IsCancellationRequested && n < 400; n++)
            {
                var body = $$"""{"model":"{{model}}","prompt":[{{5 + n % 50}},9,11],"max_tokens":6,"temperature":0}""";
                var started = Stopwatch.StartNew();
                for (int attempt = 0; ; attempt++)
                {
                    var target = gateways[next++ % gateways.Length];
                    try
                    {
                        using var response = await http.PostAsync(new Uri(target, "v1/completions"), new StringContent(body, Encoding.UTF8, "application/json"));
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            lock (gate) { Succeeded++; if (started.Elapsed > Slowest) Slowest = started.Elapsed; }
                            break;
                        }
                        if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                        {
                            lock (gate) { Refused++; Refused503++; Refused503WithRetryAfter &= response.Headers.RetryAfter is not null; }
                        }
                        else
                        {
                            var text = await response.Content.ReadAsStringAsync();
                            lock (gate) Failures.Add($"{target}: {(int)response.StatusCode} {text}");
                            break;
                        }
                    }
                    catch (HttpRequestException) { lock (gate) Refused++; }
                    catch (TaskCanceledException) { lock (gate) Failures.Add($"{target}: no answer within 45 s (a hanging request)"); break; }
                    if (attempt > 40) { lock (gate) Failures.Add("no gateway answered 200 after 40 tries"); break; }
                    await Task.Delay(100);
                }
            }
        }
    }
}
