using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Http;
using MoeCluster.Node.Jobs;

namespace MoeCluster.Node.Files;

/// <summary>OpenAI's file object.</summary>
public sealed record FileObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("expires_at")] long? ExpiresAt,
    [property: JsonPropertyName("filename")] string FileName,
    [property: JsonPropertyName("purpose")] string Purpose)
{
    [JsonPropertyName("object")] public string Object => "file";
    [JsonPropertyName("status")] public string Status => "processed";
}

public sealed record FileDeleted([property: JsonPropertyName("id")] string Id)
{
    [JsonPropertyName("object")] public string Object => "file";
    [JsonPropertyName("deleted")] public bool Deleted => true;
}

/// <summary>POST /v1/files (multipart: purpose=batch, file), GET /v1/files/{id}, GET /v1/files/{id}/content,
/// DELETE /v1/files/{id}. Files live in the shared file store, so a file uploaded to one gateway is read on any other;
/// a batch's output and error files are made from its results when asked for.</summary>
public static class FilesEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/files", Upload);
        app.MapGet("/v1/files/{id}", async context =>
        {
            var (file, _) = await Find(context, Id(context), withContent: false);
            await ApiResults.WriteJsonAsync(context, file);
        });
        app.MapGet("/v1/files/{id}/content", async context =>
        {
            var id = Id(context);
            var (file, generated) = await Find(context, id, withContent: true);
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers.ContentDisposition = $"attachment; filename=\"{file.FileName}\"";
            if (generated is not null) { await context.Response.Body.WriteAsync(generated, context.RequestAborted); return; }
            var store = context.RequestServices.GetRequiredService<FileStore>();
            await foreach (var chunk in store.ReadAsync(id, context.RequestAborted))
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
        });
        app.MapDelete("/v1/files/{id}", async context =>
        {
            var id = Id(context);
            var store = context.RequestServices.GetRequiredService<FileStore>();
            if (!await store.DeleteAsync(id, context.RequestAborted)) throw NotFound(id);
            await ApiResults.WriteJsonAsync(context, new FileDeleted(id));
        });
    }

    static string Id(HttpContext context) => (string)context.Request.RouteValues["id"]!;

    static ApiException NotFound(string id) => new(404, $"no file with id '{id}'", "file_id", "not_found");

    static async Task Upload(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        using var slot = context.RequestServices.GetRequiredService<UploadSlots>().Enter();
        using var upload = await MultipartUpload.ReadAsync(context, Path.Combine(Path.GetFullPath(options.DataDirectory), "uploads"), options.MaxJobBodyBytes);
        if (!upload.Fields.TryGetValue("purpose", out var purpose))
            throw ApiException.MissingField("purpose");
        if (purpose != "batch")
            throw ApiException.BadRequest("purpose", $"purpose '{purpose}' is not supported here; this server stores files for the Batch API (purpose 'batch')");
        await JsonlFile.CheckAsync(upload.Path, options.MaxJobLines, context.RequestAborted);
        var stored = await JobCalls.StoreAsync(context, upload.Path, upload.Length, upload.FileName, purpose);
        await ApiResults.WriteJsonAsync(context, Object(stored));
    }

    static FileObject Object(StoredFile f) => new(f.Id, f.Bytes, f.CreatedAt, f.ExpiresAt, f.FileName, f.Purpose);

    /// <summary>A stored file, or a batch's generated output or error file (with its content when asked).</summary>
    static async Task<(FileObject File, byte[]? Generated)> Find(HttpContext context, string id, bool withContent)
    {
        if (BatchOutput.Parse(id) is { } output)
        {
            JobResults results;
            try { results = await JobCalls.ResultsAsync(context, output.JobId); }
            catch (ApiException e) when (e.Status == 404) { throw NotFound(id); }
            if (!results.Status.Terminal || results.Status.Status == JobStates.Failed) throw NotFound(id);
            var content = BatchOutput.Content(results, output.Errors);
            var name = $"{output.JobId}_{(output.Errors ? "error" : "output")}.jsonl";
            return (new FileObject(id, content.Length, results.Status.FinishedAt ?? results.Status.CreatedAt, null, name, "batch_output"), withContent ? content : null);
        }
        var store = context.RequestServices.GetRequiredService<FileStore>();
        var file = await store.GetAsync(id, context.RequestAborted) ?? throw NotFound(id);
        return (Object(file), null);
    }
}
