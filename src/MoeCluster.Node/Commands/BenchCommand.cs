using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster bench`: load a running gateway with concurrent streaming completions and report throughput,
/// time to first token and inter-token latency percentiles.</summary>
public static class BenchCommand
{
    static readonly Option<string> Gateway = new("--gateway") { DefaultValueFactory = _ => $"http://127.0.0.1:{NodeDefaults.HttpPort}" };
    static readonly Option<string?> ApiKey = new("--api-key");
    static readonly Option<int> Concurrency = new("--concurrency") { Description = "clients sending at once", DefaultValueFactory = _ => 8 };
    static readonly Option<int> Requests = new("--requests") { Description = "requests in total", DefaultValueFactory = _ => 32 };
    static readonly Option<int> MaxTokens = new("--max-tokens") { DefaultValueFactory = _ => 32 };
    static readonly Option<string> Prompt = new("--prompt") { DefaultValueFactory = _ => "The best way to predict the future is" };

    public static Command Create()
    {
        var c = new Command("bench", "Measure a running gateway: tokens/s, TTFT and inter-token latency.") { Gateway, ApiKey, Concurrency, Requests, MaxTokens, Prompt };
        c.SetAction(async (p, ct) =>
        {
            using var http = new HttpClient { BaseAddress = new Uri(p.GetValue(Gateway)!.TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(10) };
            if ((p.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("MOECLUSTER_API_KEY")) is string key)
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            string model;
            try { model = JsonNode.Parse(await http.GetStringAsync("v1/models", ct))!["data"]![0]!["id"]!.GetValue<string>(); }
            catch (HttpRequestException e) { Console.Error.WriteLine($"moecluster bench: {e.Message}"); return 2; }
            var ttft = new List<double>(); var itl = new List<double>(); long tokens = 0; int failed = 0;
            int next = 0;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, p.GetValue(Concurrency)).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) <= p.GetValue(Requests))
                {
                    var body = new JsonObject { ["model"] = model, ["prompt"] = p.GetValue(Prompt), ["max_tokens"] = p.GetValue(MaxTokens), ["temperature"] = 0, ["stream"] = true };
                    var start = Stopwatch.GetTimestamp();
                    using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                    if (!response.IsSuccessStatusCode) { Interlocked.Increment(ref failed); continue; }
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
                    long? last = null; long count = 0;
                    while (await reader.ReadLineAsync(ct) is string line)
                    {
                        if (!line.StartsWith("data: ") || line == "data: [DONE]") continue;
                        var now = Stopwatch.GetTimestamp();
                        lock (ttft) { if (last is null) ttft.Add(Stopwatch.GetElapsedTime(start, now).TotalMilliseconds); else itl.Add(Stopwatch.GetElapsedTime(last.Value, now).TotalMilliseconds); }
                        last = now; count++;
                    }
                    Interlocked.Add(ref tokens, count);
                }
            }));
            double seconds = clock.Elapsed.TotalSeconds;
            static string Pct(List<double> v, double q) => v.Count == 0 ? "–" : v.Order().ElementAt((int)Math.Min(v.Count - 1, q * v.Count)).ToString("0.0");
            Console.WriteLine($"{p.GetValue(Requests)} requests, {p.GetValue(Concurrency)} concurrent, {failed} failed, {seconds:0.0} s");
            Console.WriteLine($"throughput   {tokens / seconds:0.0} streamed chunks (≈tokens)/s");
            Console.WriteLine($"TTFT ms      p50 {Pct(ttft, .5)}  p95 {Pct(ttft, .95)}  p99 {Pct(ttft, .99)}");
            Console.WriteLine($"ITL ms       p50 {Pct(itl, .5)}  p95 {Pct(itl, .95)}  p99 {Pct(itl, .99)}");
            return failed == 0 ? 0 : 1;
        });
        return c;
    }
}
