using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;

namespace MoeCluster.Node.Tests;

/// <summary>Debian's real Prometheus server, run with deploy/prometheus/prometheus.yml pointed at a running node,
/// scrapes it and answers a query for a moecluster series with a value above zero after traffic.</summary>
[Collection(ServingCollection.Name)]
public sealed class PrometheusScrapeSpec(ServingFixture f)
{
    [Fact]
    public async Task Real_prometheus_scrapes_the_node_and_sees_its_traffic()
    {
        var prometheus = RepoFiles.Tool("prometheus");
        var work = ServingHost.TempDirectory();
        string target = $"127.0.0.1:{f.Host.BaseAddress.Port}";
        var config = File.ReadAllText(RepoFiles.Path("deploy", "prometheus", "prometheus.yml"))
            .Replace("localhost:8080", target)
            .Replace("scrape_interval: 15s", "scrape_interval: 1s")
            .Replace("evaluation_interval: 15s", "evaluation_interval: 1s");
        Assert.Contains(target, config);
        File.WriteAllText(Path.Combine(work, "prometheus.yml"), config);
        File.Copy(RepoFiles.Path("deploy", "prometheus", "alerts.yml"), Path.Combine(work, "alerts.yml"));

        int port = FreePort();
        var info = new ProcessStartInfo(prometheus) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work };
        foreach (var a in new[] { $"--config.file={Path.Combine(work, "prometheus.yml")}", $"--storage.tsdb.path={Path.Combine(work, "tsdb")}", $"--web.listen-address=127.0.0.1:{port}" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var log = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
        try
        {
            var (status, _) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = "Hello world", max_tokens = 3 });
            Assert.Equal(200, status);

            double up = await QueryUntilPositive(api, "up{job=\"moecluster\"}", process, log);
            Assert.Equal(1, up);
            double requests = await QueryUntilPositive(api, "sum(moecluster_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"})", process, log);
            Assert.True(requests >= 1, $"completions counted: {requests}");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit();
        }
    }

    /// <summary>Polls the Prometheus query API (1 s scrape interval) until the query returns a value above zero.</summary>
    static async Task<double> QueryUntilPositive(HttpClient api, string query, Process process, System.Text.StringBuilder log)
    {
        string last = "";
        async Task<double> Probe()
        {
            if (process.HasExited) throw new InvalidOperationException($"prometheus exited with {process.ExitCode}:\n{log}");
            try
            {
                last = await api.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(query));
                var result = JsonNode.Parse(last)!["data"]!["result"]!.AsArray();
                return result.Count > 0 ? double.Parse((string)result[0]!["value"]![1]!, CultureInfo.InvariantCulture) : 0;
            }
            catch (HttpRequestException) { return 0; /* still starting */ }
        }
        try { return await Poll.UntilAsync(Probe, value => value > 0, TimeSpan.FromSeconds(60), $"Prometheus returning a positive value for {query}"); }
        catch (TimeoutException e) { throw new TimeoutException($"{e.Message}; last answer: {last}\n{log}"); }
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
