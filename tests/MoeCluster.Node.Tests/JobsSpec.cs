using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

[Collection(ServingCollection.Name)]
public sealed class JobsSpec(ServingFixture f)
{
    string Completion(string prompt, int maxTokens = 4, bool ignoreEos = false) =>
        JsonSerializer.Serialize(new { model = f.Model.Name, prompt, max_tokens = maxTokens, temperature = 0, ignore_eos = ignoreEos });

    [Fact]
    public async Task A_job_answers_every_line_in_input_order_and_bad_lines_get_error_results()
    {
        string chatLine = JsonSerializer.Serialize(new
        {
            custom_id = "req-3", method = "POST", url = "/v1/chat/completions",
            body = new { model = f.Model.Name, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 3, temperature = 0 },
        });
        string[] lines =
        [
            Completion("Hello world"),
            "{not json",
            """{"model":"other-model","prompt":"x"}""",
            chatLine,
            JsonSerializer.Serialize(new { model = f.Model.Name, prompt = new[] { 5, 6, 7 }, max_tokens = 3, temperature = 0 }),
        ];
        var job = await f.Host.Http.SubmitAsync(lines);
        string id = (string)job["id"]!;
        Assert.Equal(5, (int)job["total"]!);
        Assert.Contains((string)job["status"]!, new[] { "in_progress", "completed" });

        var status = await f.Host.Http.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(60));
        Assert.Equal("completed", (string)status["status"]!);
        Assert.Equal(5, (int)status["completed"]!);
        Assert.Equal(2, (int)status["failed"]!);

        var results = await f.Host.Http.ResultsAsync(id);
        JobsClient.AssertOneResultPerLineInOrder(results, 5);
        var (_, direct) = await f.Host.Http.PostJsonAsync("v1/completions", JsonDocument.Parse(lines[0]).RootElement);
        Assert.Equal((string)direct!["choices"]![0]!["text"]!, (string)results[0]["response"]!["choices"]![0]!["text"]!);
        Assert.Equal("invalid_json", (string)results[1]["error"]!["code"]!);
        Assert.Equal("model", (string)results[2]["error"]!["param"]!);
        Assert.Equal("req-3", (string)results[3]["custom_id"]!);
        Assert.Equal("chat.completion", (string)results[3]["response"]!["object"]!);
        Assert.Equal(3, (int)results[4]["response"]!["usage"]!["prompt_tokens"]!);
    }

    [Fact]
    public async Task A_multipart_file_upload_is_accepted_like_a_jsonl_body()
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(Completion("one") + "\r\n\r\n" + Completion("two") + "\n"));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", "batch.jsonl");
        using var response = await f.Host.Http.PostAsync("v1/jobs", form);
        Assert.Equal(200, (int)response.StatusCode);
        string id = (string)System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!;
        await f.Host.Http.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(60));
        JobsClient.AssertOneResultPerLineInOrder(await f.Host.Http.ResultsAsync(id), 2);
    }

    [Fact]
    public async Task Cancelling_a_job_stops_it_and_every_line_still_reports_exactly_once()
    {
        var lines = Enumerable.Range(0, 64).Select(i => Completion($"Line {i} of a long job", maxTokens: 100, ignoreEos: true)).ToList();
        var job = await f.Host.Http.SubmitAsync(lines);
        string id = (string)job["id"]!;

        using var cancel = await f.Host.Http.PostAsync($"v1/jobs/{id}/cancel", null);
        Assert.Equal(200, (int)cancel.StatusCode);
        var status = await f.Host.Http.StatusAsync(id);
        Assert.Equal("cancelled", (string)status["status"]!);
        Assert.True((int)status["completed"]! < 64, $"the job finished before it could be cancelled: {status}");

        var results = await f.Host.Http.ResultsAsync(id);
        JobsClient.AssertOneResultPerLineInOrder(results, 64);
        Assert.Contains(results, r => (string?)r["error"]?["code"] == "job_cancelled");
        // Cancelling again changes nothing.
        using var again = await f.Host.Http.PostAsync($"v1/jobs/{id}/cancel", null);
        Assert.Equal("cancelled", (string)System.Text.Json.Nodes.JsonNode.Parse(await again.Content.ReadAsStringAsync())!["status"]!);
    }

    [Fact]
    public async Task Unknown_jobs_and_empty_or_non_utf8_uploads_get_openai_errors()
    {
        var (status, body) = await f.Host.Http.GetJsonAsync("v1/jobs/job_doesnotexist");
        Assert.Equal(404, status);
        OpenAiErrors.AssertError(body, "id");

        (status, body) = await f.Host.Http.PostRawAsync("v1/jobs", "\n\n"u8.ToArray());
        Assert.Equal(400, status);
        OpenAiErrors.AssertError(body, "file");

        (status, body) = await f.Host.Http.PostRawAsync("v1/jobs", [.. Encoding.UTF8.GetBytes(Completion("ok") + "\n"), 0xFF, 0xFE, (byte)'\n']);
        Assert.Equal(400, status);
        OpenAiErrors.AssertError(body, "file");
        Assert.Contains("line 2", (string)body!["error"]!["message"]!);
    }
}
