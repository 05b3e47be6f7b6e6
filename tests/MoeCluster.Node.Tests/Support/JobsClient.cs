using MoeCluster.TestSupport;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace MoeCluster.Node.Tests.Support;

/// <summary>The /v1/jobs API as a test uses it.</summary>
public static class JobsClient
{
    public static async Task<JsonNode> SubmitAsync(this HttpClient http, IEnumerable<string> lines)
    {
        using var content = new StringContent(string.Join("\n", lines) + "\n", Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        using var response = await http.PostAsync("v1/jobs", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"submit failed: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    public static async Task<JsonNode> StatusAsync(this HttpClient http, string id)
    {
        var (status, body) = await http.GetJsonAsync($"v1/jobs/{id}");
        Assert.Equal(200, status);
        return body!;
    }

    public static Task<JsonNode> WaitForAsync(this HttpClient http, string id, Func<JsonNode, bool> condition, TimeSpan deadline, string what) =>
        Poll.UntilAsync(() => http.StatusAsync(id), condition, deadline, what);

    public static Task<JsonNode> WaitUntilEndedAsync(this HttpClient http, string id, TimeSpan deadline) =>
        http.WaitForAsync(id, s => (string)s["status"]! != "in_progress", deadline, $"job {id} to end");

    public static async Task<List<JsonNode>> ResultsAsync(this HttpClient http, string id)
    {
        using var response = await http.GetAsync($"v1/jobs/{id}/results");
        Assert.Equal(200, (int)response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
    }

    /// <summary>Every line 0..total-1 has exactly one result, in input order.</summary>
    public static void AssertOneResultPerLineInOrder(List<JsonNode> results, int total)
    {
        Assert.Equal(Enumerable.Range(0, total), results.Select(r => (int)r["line"]!));
        Assert.All(results, r => Assert.True(r["response"] is not null ^ r["error"] is not null, $"line needs exactly one of response/error: {r}"));
    }
}
