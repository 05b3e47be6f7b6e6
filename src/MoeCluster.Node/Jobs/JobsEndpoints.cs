using System.Text;
using System.Text.Unicode;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>POST /v1/jobs (JSONL body or multipart upload), GET /v1/jobs/{id}, GET /v1/jobs/{id}/results,
/// POST /v1/jobs/{id}/cancel: the original job API, over the same jobs as the Batch API (docs/JOBS.md).</summary>
public static class JobsEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/jobs", Submit);
        app.MapGet("/v1/jobs/{id}", async context => await ApiResults.WriteJsonAsync(context, await JobCalls.StatusAsync(context, Id(context))));
        app.MapPost("/v1/jobs/{id}/cancel", async context => await ApiResults.WriteJsonAsync(context, await JobCalls.CancelAsync(context, Id(context))));
        app.MapGet("/v1/jobs/{id}/results", async context =>
        {
            var results = await JobCalls.ResultsAsync(context, Id(context));
            context.Response.ContentType = "application/jsonl";
            context.Response.Headers["X-Job-Status"] = results.Status.Status;
            foreach (var line in results.Lines) await context.Response.WriteAsync(line + "\n", context.RequestAborted);
        });
    }

    static string Id(HttpContext context) => (string)context.Request.RouteValues["id"]!;

    /// <summary>The JSONL (a raw body, or the part named file of a multipart upload) is streamed to a temporary file,
    /// checked (UTF-8, line count), stored in the shared file store, and the job created from it.</summary>
    static async Task Submit(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        using var slot = context.RequestServices.GetRequiredService<UploadSlots>().Enter();
        var uploads = Path.Combine(Path.GetFullPath(options.DataDirectory), "uploads");
        using var upload = context.Request.HasFormContentType
            ? await MultipartUpload.ReadAsync(context, uploads, options.MaxJobBodyBytes)
            : await MultipartUpload.ReadRawAsync(context, uploads, options.MaxJobBodyBytes, "jobs.jsonl");
        // Rejects a file that is not UTF-8, is empty, or has too many lines before anything is stored.
        await Files.JsonlFile.CheckAsync(upload.Path, options.MaxJobLines, context.RequestAborted);
        var file = await JobCalls.StoreAsync(context, upload.Path, upload.Length, upload.FileName, "jobs");
        var status = await JobCalls.SubmitAsync(context, new SubmitJob("job_" + Guid.NewGuid().ToString("N"), file.Id));
        await ApiResults.WriteJsonAsync(context, status);
    }

    /// <summary>Non-blank lines, numbered from 0. The file must be UTF-8 (a line that is not is named); a line that is
    /// not a valid request is kept and gets an error result.</summary>
    public static List<string> SplitLines(ReadOnlySpan<byte> bytes, int maxLines)
    {
        var lines = new List<string>();
        int number = 0;
        while (bytes.Length > 0)
        {
            int end = bytes.IndexOf((byte)'\n');
            var line = end < 0 ? bytes : bytes[..end];
            bytes = end < 0 ? [] : bytes[(end + 1)..];
            number++;
            if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
            if (!Utf8.IsValid(line)) throw ApiException.BadRequest("file", $"line {number} of the file is not valid UTF-8", "invalid_encoding");
            var text = Encoding.UTF8.GetString(line);
            if (string.IsNullOrWhiteSpace(text)) continue;
            if (lines.Count == maxLines) throw ApiException.BadRequest("file", $"a job holds at most {maxLines} lines", "too_many_lines");
            lines.Add(text);
        }
        if (lines.Count == 0) throw ApiException.BadRequest("file", "the job has no lines; send JSONL with one request per line");
        return lines;
    }
}
