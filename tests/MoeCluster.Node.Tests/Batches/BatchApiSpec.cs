using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Node.Http;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;

#pragma warning disable OPENAI001

namespace MoeCluster.Node.Tests.Batches;

/// <summary>Issue 10.4 on one gateway: OpenAI's Batch API through the official .NET client — files, batches, their
/// objects and statuses, request counts, output and error files in OpenAI's line format, OpenAI's input rules,
/// listing with after/limit, cancellation, and /v1/jobs seeing the same batch.</summary>
[Collection(ServingCollection.Name)]
public sealed class BatchApiSpec(ServingFixture f)
{
    BatchClients Client => new(f.Host.BaseAddress);

    [Fact]
    public async Task A_batch_uploaded_created_polled_and_downloaded_with_the_official_client_answers_every_line_once()
    {
        var client = Client;
        string[] lines =
        [
            BatchClients.ChatLine("a", f.Model.Name, "Hello"),
            BatchClients.ChatLine("b", f.Model.Name, "How are you?"),
            BatchClients.ChatLine("c", "no-such-model", "Hi"),
        ];
        var file = await client.UploadAsync(lines);
        Assert.StartsWith("file-", file.Id);
        Assert.Equal("input.jsonl", file.Filename);
        Assert.Equal((await client.Files.GetFileAsync(file.Id)).Value.SizeInBytes, file.SizeInBytes);

        var created = await client.CreateAsync(file.Id, metadata: new { purpose = "test" });
        string id = (string)created["id"]!;
        Assert.StartsWith("batch_", id);
        Assert.Equal("batch", (string)created["object"]!);
        Assert.Equal(file.Id, (string)created["input_file_id"]!);
        Assert.Equal("/v1/chat/completions", (string)created["endpoint"]!);
        Assert.Equal("test", (string)created["metadata"]!["purpose"]!);
        Assert.Contains((string)created["status"]!, new[] { "in_progress", "completed" });

        var batch = await client.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(60));
        Assert.Equal("completed", (string)batch["status"]!);
        Assert.Equal(3, (int)batch["request_counts"]!["total"]!);
        Assert.Equal(2, (int)batch["request_counts"]!["completed"]!);
        Assert.Equal(1, (int)batch["request_counts"]!["failed"]!);
        Assert.NotNull(batch["completed_at"]);
        Assert.True((long)batch["expires_at"]! > (long)batch["created_at"]!);

        var output = await client.DownloadLinesAsync((string)batch["output_file_id"]!);
        Assert.Equal(["a", "b"], output.Select(l => (string)l["custom_id"]!));
        Assert.All(output, l => Assert.Equal(200, (int)l["response"]!["status_code"]!));
        Assert.All(output, l => Assert.Equal("chat.completion", (string)l["response"]!["body"]!["object"]!));
        Assert.All(output, l => Assert.Null(l["error"]));
        // The line's answer is what the same request gets directly.
        var (_, direct) = await f.Host.Http.PostJsonAsync("v1/chat/completions", JsonDocument.Parse(lines[0]).RootElement.GetProperty("body"));
        Assert.Equal((string)direct!["choices"]![0]!["message"]!["content"]!, (string)output[0]["response"]!["body"]!["choices"]![0]!["message"]!["content"]!);

        var errors = await client.DownloadLinesAsync((string)batch["error_file_id"]!);
        var error = Assert.Single(errors);
        Assert.Equal("c", (string)error["custom_id"]!);
        Assert.Equal(404, (int)error["response"]!["status_code"]!);
        Assert.Equal("model", (string)error["response"]!["body"]!["error"]!["param"]!);

        // The same batch through the job API.
        var (status, job) = await f.Host.Http.GetJsonAsync($"v1/jobs/{id}");
        Assert.Equal(200, status);
        Assert.Equal(3, (int)job!["completed"]!);
    }

    [Fact]
    public async Task A_batch_breaking_openai_input_rules_fails_naming_each_line_and_runs_nothing()
    {
        var client = Client;
        var wrongUrl = BatchClients.ChatLine("y", f.Model.Name, "Hi").Replace("/v1/chat/completions", "/v1/completions");
        var file = await client.UploadAsync([BatchClients.ChatLine("x", f.Model.Name, "Hi"), BatchClients.ChatLine("x", f.Model.Name, "Again"), wrongUrl]);
        var created = await client.CreateAsync(file.Id);
        var batch = await client.WaitUntilEndedAsync((string)created["id"]!, TimeSpan.FromSeconds(30));

        Assert.Equal("failed", (string)batch["status"]!);
        Assert.NotNull(batch["failed_at"]);
        Assert.Null(batch["output_file_id"]);
        var data = batch["errors"]!["data"]!.AsArray();
        Assert.Contains(data, e => (string)e!["code"]! == "duplicate_custom_id" && (int)e["line"]! == 2);
        Assert.Contains(data, e => (string)e!["code"]! == "mismatched_endpoint" && (int)e["line"]! == 3);
    }

    [Fact]
    public async Task Batches_are_listed_newest_first_with_after_and_limit_and_can_be_cancelled()
    {
        var client = Client;
        var file = await client.UploadAsync(Enumerable.Range(0, 40).Select(i => BatchClients.ChatLine($"l{i}", f.Model.Name, $"Line {i} of a long batch", maxTokens: 60)));
        var ids = new List<string>();
        for (int i = 0; i < 3; i++) ids.Add((string)(await client.CreateAsync(file.Id))["id"]!);

        var (_, page) = await f.Host.Http.GetJsonAsync("v1/batches?limit=2");
        Assert.Equal("list", (string)page!["object"]!);
        Assert.Equal([ids[2], ids[1]], page["data"]!.AsArray().Select(b => (string)b!["id"]!));
        Assert.True((bool)page["has_more"]!);
        (_, page) = await f.Host.Http.GetJsonAsync($"v1/batches?limit=2&after={ids[1]}");
        Assert.Equal(ids[0], (string)page!["data"]![0]!["id"]!);
        var (bad, error) = await f.Host.Http.GetJsonAsync("v1/batches?limit=1000");
        Assert.Equal(400, bad);
        OpenAiErrors.AssertError(error, "limit");

        foreach (var id in ids)
        {
            var cancelled = await client.CancelAsync(id);
            Assert.Equal("cancelled", (string)cancelled["status"]!);
            Assert.NotNull(cancelled["cancelled_at"]);
            // Every line that never ran is in the error file, once, with OpenAI's error shape.
            var errors = await client.DownloadLinesAsync((string)cancelled["error_file_id"]!);
            int answered = cancelled["output_file_id"] is JsonValue o ? (await client.DownloadLinesAsync((string)o!)).Count : 0;
            Assert.Equal(40, answered + errors.Count);
            Assert.Contains(errors, e => (string?)e["error"]?["code"] == "job_cancelled");
        }
    }

    [Fact]
    public async Task Bad_file_and_batch_requests_get_openai_errors_naming_the_field()
    {
        var http = f.Host.Http;
        var (status, body) = await http.PostJsonAsync("v1/batches", new { input_file_id = "file-nope", endpoint = "/v1/chat/completions", completion_window = "24h" });
        Assert.Equal(404, status);
        OpenAiErrors.AssertError(body, "input_file_id");
        (status, body) = await http.PostJsonAsync("v1/batches", new { input_file_id = "file-nope", endpoint = "/v1/embeddings", completion_window = "24h" });
        Assert.Equal(400, status);
        OpenAiErrors.AssertError(body, "endpoint");
        (status, body) = await http.PostJsonAsync("v1/batches", new { input_file_id = "file-nope", endpoint = "/v1/completions", completion_window = "1h" });
        Assert.Equal(400, status);
        OpenAiErrors.AssertError(body, "completion_window");
        (status, body) = await http.GetJsonAsync("v1/files/file-nope");
        Assert.Equal(404, status);
        OpenAiErrors.AssertError(body, "file_id");
        (status, body) = await http.GetJsonAsync("v1/batches/batch_nope");
        Assert.Equal(404, status);

        using var form = new MultipartFormDataContent { { new StringContent("fine-tune"), "purpose" }, { new ByteArrayContent("{}\n"u8.ToArray()), "file", "x.jsonl" } };
        using var response = await http.PostAsync("v1/files", form);
        Assert.Equal(400, (int)response.StatusCode);
        OpenAiErrors.AssertError(JsonNode.Parse(await response.Content.ReadAsStringAsync()), "purpose");
    }

    public static TheoryData<string, string> BrokenMultipart() => new()
    {
        { "truncated", "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{\"a\":1}\n{\"b\"" },
        { "wrong boundary", "--OTHER\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{}\n\r\n--OTHER--\r\n" },
        { "no part headers", "--B\r\n\r\n{}\r\n--B--\r\n" },
        { "empty", "" },
    };

    [Theory]
    [MemberData(nameof(BrokenMultipart))]
    public async Task A_broken_multipart_upload_gets_a_4xx_naming_the_problem_on_files_and_jobs(string what, string body)
    {
        foreach (var path in new[] { "v1/files", "v1/jobs" })
        {
            using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=B");
            using var response = await f.Host.Http.PostAsync(path, content);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode is >= 400 and < 500, $"{what} to {path}: {(int)response.StatusCode} {text}");
            OpenAiErrors.AssertError(JsonNode.Parse(text), "file");
        }
        using var noBoundary = new ByteArrayContent("x"u8.ToArray());
        noBoundary.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data");
        using var r = await f.Host.Http.PostAsync("v1/files", noBoundary);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains("boundary", await r.Content.ReadAsStringAsync());
        // The server still serves.
        var (ok, _) = await f.Host.Http.GetJsonAsync("v1/models");
        Assert.Equal(200, ok);
    }

    [Fact]
    public void Uploads_beyond_the_cap_get_429_until_one_finishes()
    {
        var slots = new UploadSlots(2);
        using var a = slots.Enter();
        var b = slots.Enter();
        var refused = Assert.Throws<ApiException>(() => slots.Enter());
        Assert.Equal(429, refused.Status);
        b.Dispose();
        using var c = slots.Enter();
    }

    [Fact]
    public async Task Jobs_and_files_are_deleted_once_their_retention_has_passed()
    {
        await using var host = await ServingHost.StartAsync(f.Model, new ServingOptions { Retention = TimeSpan.FromSeconds(3) });
        var client = new BatchClients(host.BaseAddress);
        var file = await client.UploadAsync([BatchClients.ChatLine("r", f.Model.Name, "Hi")]);
        string id = (string)(await client.CreateAsync(file.Id))["id"]!;
        var batch = await client.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(30));
        Assert.Equal("completed", (string)batch["status"]!);

        await Poll.UntilAsync(async () =>
        {
            var (batchStatus, _) = await host.Http.GetJsonAsync($"v1/batches/{id}");
            var (fileStatus, _) = await host.Http.GetJsonAsync($"v1/files/{file.Id}");
            return batchStatus == 404 && fileStatus == 404;
        }, TimeSpan.FromSeconds(30), "the batch and its input file deleted after a 3 s retention");
        var (_, list) = await host.Http.GetJsonAsync("v1/batches");
        Assert.Empty(list!["data"]!.AsArray());
    }
}
