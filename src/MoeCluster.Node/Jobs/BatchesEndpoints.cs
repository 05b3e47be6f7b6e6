using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Files;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

public sealed record BatchRequestCounts(
    [property: JsonPropertyName("total")] int Total,
    [property: JsonPropertyName("completed")] int Completed,
    [property: JsonPropertyName("failed")] int Failed);

public sealed record BatchErrorList([property: JsonPropertyName("data")] IReadOnlyList<BatchErrorObject> Data)
{
    [JsonPropertyName("object")] public string Object => "list";
}

public sealed record BatchErrorObject(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("line")] int? Line);

/// <summary>OpenAI's batch object (every field OpenAI documents; timestamps null until reached).</summary>
public sealed record BatchObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("endpoint")] string Endpoint,
    [property: JsonPropertyName("errors")] BatchErrorList? Errors,
    [property: JsonPropertyName("input_file_id")] string? InputFileId,
    [property: JsonPropertyName("completion_window")] string CompletionWindow,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("output_file_id")] string? OutputFileId,
    [property: JsonPropertyName("error_file_id")] string? ErrorFileId,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("in_progress_at")] long? InProgressAt,
    [property: JsonPropertyName("expires_at")] long? ExpiresAt,
    [property: JsonPropertyName("finalizing_at")] long? FinalizingAt,
    [property: JsonPropertyName("completed_at")] long? CompletedAt,
    [property: JsonPropertyName("failed_at")] long? FailedAt,
    [property: JsonPropertyName("expired_at")] long? ExpiredAt,
    [property: JsonPropertyName("cancelling_at")] long? CancellingAt,
    [property: JsonPropertyName("cancelled_at")] long? CancelledAt,
    [property: JsonPropertyName("request_counts")] BatchRequestCounts RequestCounts,
    [property: JsonPropertyName("metadata")] IReadOnlyDictionary<string, string>? Metadata)
{
    [JsonPropertyName("object")] public string Object => "batch";

    public static BatchObject From(JobStatus s)
    {
        var b = s.Batch ?? new BatchInfo("/v1/completions", "24h", null);
        bool ended = s.Terminal && s.Status != JobStates.Failed;
        long? at(string state) => s.Status == state ? s.FinishedAt : null;
        return new BatchObject(s.Id, b.Endpoint,
            s.Errors is { Count: > 0 } e ? new BatchErrorList(e.Select(x => new BatchErrorObject(x.Code, x.Message, x.Param, x.Line)).ToList()) : null,
            s.InputFileId, b.CompletionWindow, s.Status,
            ended && s.Completed > s.Failed ? BatchOutput.OutputFileId(s.Id) : null,
            ended && (s.Failed > 0 || s.Completed < s.Total) ? BatchOutput.ErrorFileId(s.Id) : null,
            s.CreatedAt, s.Status == JobStates.Failed ? null : s.CreatedAt, s.ExpiresAt,
            ended ? s.FinishedAt : null, at(JobStates.Completed), at(JobStates.Failed), at(JobStates.Expired),
            at(JobStates.Cancelled), at(JobStates.Cancelled),
            new BatchRequestCounts(s.Total, s.Completed - s.Failed, s.Failed), b.Metadata);
    }
}

public sealed record BatchPage(
    [property: JsonPropertyName("data")] IReadOnlyList<BatchObject> Data,
    [property: JsonPropertyName("first_id")] string? FirstId,
    [property: JsonPropertyName("last_id")] string? LastId,
    [property: JsonPropertyName("has_more")] bool HasMore)
{
    [JsonPropertyName("object")] public string Object => "list";
}

/// <summary>OpenAI's Batch API: POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches (after, limit),
/// POST /v1/batches/{id}/cancel. A batch is a job (the same entity /v1/jobs uses) whose input is an uploaded file and
/// whose lines must follow OpenAI's rules (<see cref="BatchInput"/>); any gateway answers for any batch.</summary>
public static class BatchesEndpoints
{
    static readonly string[] Windows = ["24h"];

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/batches", Create);
        app.MapGet("/v1/batches", List);
        app.MapGet("/v1/batches/{id}", async context => await ApiResults.WriteJsonAsync(context, BatchObject.From(await JobCalls.StatusAsync(context, Id(context)))));
        app.MapPost("/v1/batches/{id}/cancel", async context => await ApiResults.WriteJsonAsync(context, BatchObject.From(await JobCalls.CancelAsync(context, Id(context)))));
    }

    static string Id(HttpContext context) => (string)context.Request.RouteValues["id"]!;

    static async Task Create(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        string inputFileId, endpoint, window;
        Dictionary<string, string>? metadata = null;
        using (var body = await RequestBody.ReadJsonObjectAsync(context, options.MaxRequestBodyBytes))
        {
            var root = body.RootElement;
            inputFileId = JsonFields.String(root, "input_file_id") ?? throw ApiException.MissingField("input_file_id");
            endpoint = JsonFields.String(root, "endpoint") ?? throw ApiException.MissingField("endpoint");
            window = JsonFields.String(root, "completion_window") ?? throw ApiException.MissingField("completion_window");
            if (!BatchInput.Endpoints.Contains(endpoint))
                throw ApiException.BadRequest("endpoint", $"endpoint must be one of {string.Join(", ", BatchInput.Endpoints)}, got '{endpoint}'");
            if (!Windows.Contains(window)) throw ApiException.BadRequest("completion_window", $"completion_window must be 24h, got '{window}'");
            if (JsonFields.Get(root, "metadata") is { } m)
            {
                if (m.ValueKind != JsonValueKind.Object) throw ApiException.WrongType("metadata", "an object of strings");
                metadata = [];
                foreach (var p in m.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.String) throw ApiException.WrongType($"metadata.{p.Name}", "a string");
                    if (metadata.Count == 16) throw ApiException.BadRequest("metadata", "metadata holds at most 16 keys");
                    metadata[p.Name] = p.Value.GetString()!;
                }
            }
        }
        var store = context.RequestServices.GetRequiredService<FileStore>();
        var file = await store.GetAsync(inputFileId, context.RequestAborted)
            ?? throw new ApiException(404, $"no file with id '{inputFileId}'", "input_file_id", "not_found");
        if (file.Purpose != "batch")
            throw ApiException.BadRequest("input_file_id", $"file '{inputFileId}' has purpose '{file.Purpose}', not 'batch'");
        var status = await JobCalls.SubmitAsync(context, new SubmitJob("batch_" + Guid.NewGuid().ToString("N"), inputFileId, new BatchInfo(endpoint, window, metadata)));
        await ApiResults.WriteJsonAsync(context, BatchObject.From(status));
    }

    static async Task List(HttpContext context)
    {
        var query = context.Request.Query;
        int limit = 20;
        if (query.TryGetValue("limit", out var l) && (!int.TryParse(l, out limit) || limit is < 1 or > 100))
            throw ApiException.BadRequest("limit", $"limit must be an integer from 1 to 100, got '{l}'");
        string? after = query.TryGetValue("after", out var a) && a.Count > 0 ? a.ToString() : null;
        var list = await JobCalls.ListAsync(context, new ListJobs(after, limit, BatchesOnly: true));
        var data = list.Jobs.Select(BatchObject.From).ToList();
        await ApiResults.WriteJsonAsync(context, new BatchPage(data, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id, list.HasMore));
    }
}
