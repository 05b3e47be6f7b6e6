using System.CommandLine;
using System.Net.Http.Headers;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster jobs submit|status|results|cancel`: batch jobs on a running gateway (see docs/JOBS.md).</summary>
public static class JobsCommand
{
    static readonly Option<string> Gateway = new("--gateway") { Description = "gateway node URL", DefaultValueFactory = _ => $"http://127.0.0.1:{NodeDefaults.HttpPort}" };
    static readonly Option<string?> ApiKey = new("--api-key") { Description = "API key (or MOECLUSTER_API_KEY)" };

    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "JSONL file, one completion request per line" };
        var id = new Argument<string>("id") { Description = "job id" };
        var jobs = new Command("jobs", "Submit and follow durable batch jobs.");
        jobs.Subcommands.Add(Sub("submit", "Submit a JSONL file; prints the job id.", file, (http, p, ct) =>
        {
            var f = p.GetValue(file)!;
            if (!f.Exists) throw new ArgumentException($"{f.FullName} not found");
            var content = new StreamContent(f.OpenRead());
            content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
            return http.PostAsync("v1/jobs", content, ct);
        }));
        jobs.Subcommands.Add(Sub("status", "Status and progress of a job.", id, (http, p, ct) => http.GetAsync($"v1/jobs/{p.GetValue(id)}", ct)));
        jobs.Subcommands.Add(Sub("results", "Results as JSONL, in input order.", id, (http, p, ct) => http.GetAsync($"v1/jobs/{p.GetValue(id)}/results", ct)));
        jobs.Subcommands.Add(Sub("cancel", "Cancel a job.", id, (http, p, ct) => http.PostAsync($"v1/jobs/{p.GetValue(id)}/cancel", null, ct)));
        return jobs;
    }

    static Command Sub<T>(string name, string description, Argument<T> argument, Func<HttpClient, ParseResult, CancellationToken, Task<HttpResponseMessage>> call)
    {
        var c = new Command(name, description) { argument, Gateway, ApiKey };
        c.SetAction(async (p, ct) =>
        {
            using var http = new HttpClient { BaseAddress = new Uri(p.GetValue(Gateway)!.TrimEnd('/') + "/") };
            var key = p.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("MOECLUSTER_API_KEY");
            if (key is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            try
            {
                using var response = await call(http, p, ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) { Console.Error.WriteLine($"moecluster jobs {name}: {(int)response.StatusCode} {body}"); return 1; }
                Console.WriteLine(body.TrimEnd());
                return 0;
            }
            catch (Exception e) when (e is HttpRequestException or ArgumentException)
            {
                Console.Error.WriteLine($"moecluster jobs {name}: {e.Message}");
                return 2;
            }
        });
        return c;
    }
}
