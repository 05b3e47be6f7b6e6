using System.Text;
using System.Text.Unicode;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>POST /v1/jobs (JSONL body or multipart upload), GET /v1/jobs/{id}, GET /v1/jobs/{id}/results,
/// POST /v1/jobs/{id}/cancel. See docs/JOBS.md.</summary>
public static class JobsEndpoints
{
    static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(15);

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/jobs", Submit);
        app.MapGet("/v1/jobs/{id}", context => Query(context, id => new GetJobStatus(id)));
        app.MapPost("/v1/jobs/{id}/cancel", context => Query(context, id => new CancelJob(id)));
        app.MapGet("/v1/jobs/{id}/results", context => Query(context, id => new GetJobResults(id)));
    }

    static async Task Submit(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var manager = Manager(context);
        var bytes = context.Request.HasFormContentType ? await ReadUpload(context, options) : await RequestBody.ReadBytesAsync(context, options.MaxJobBodyBytes);
        var lines = SplitLines(bytes, options.MaxJobLines);
        var reply = await Ask(context, manager, new SubmitJob("job_" + Guid.NewGuid().ToString("N"), lines));
        await Answer(context, reply);
    }

    static async Task Query(HttpContext context, Func<string, object> query)
    {
        var id = (string)context.Request.RouteValues["id"]!;
        var reply = await Ask(context, Manager(context), query(id));
        await Answer(context, reply);
    }

    static async Task Answer(HttpContext context, object reply)
    {
        switch (reply)
        {
            case JobNotFound nf:
                throw new ApiException(404, $"no job with id '{nf.JobId}'", "id", "job_not_found");
            case JobStatus status:
                await ApiResults.WriteJsonAsync(context, status);
                break;
            case JobResults results:
                context.Response.ContentType = "application/jsonl";
                context.Response.Headers["X-Job-Status"] = results.Status.Status;
                var text = new StringBuilder();
                foreach (var line in results.Lines) text.Append(line).Append('\n');
                await context.Response.WriteAsync(text.ToString(), context.RequestAborted);
                break;
            default:
                throw new InvalidOperationException($"unexpected reply {reply.GetType().Name} from the job manager");
        }
    }

    static async Task<object> Ask(HttpContext context, IActorRef manager, object message)
    {
        try { return await manager.Ask<object>(message, AskTimeout, context.RequestAborted); }
        catch (AskTimeoutException)
        {
            throw new ApiException(503, $"the job store did not answer within {AskTimeout.TotalSeconds:0} s; retry later", null, "jobs_unavailable", "server_error");
        }
    }

    static IActorRef Manager(HttpContext context)
    {
        var registry = context.RequestServices.GetService<ActorRegistry>();
        if (registry is null || !registry.TryGet<JobManagerActor>(out var manager))
            throw new ApiException(503, "batch jobs are not enabled on this node", null, "jobs_disabled", "server_error");
        return manager;
    }

    static async Task<byte[]> ReadUpload(HttpContext context, ServingOptions options)
    {
        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = options.MaxJobBodyBytes;
        if (context.Request.ContentLength > options.MaxJobBodyBytes)
            throw new ApiException(413, $"request body exceeds the limit of {options.MaxJobBodyBytes} bytes", null, "request_too_large");
        IFormCollection form;
        try { form = await context.Request.ReadFormAsync(context.RequestAborted); }
        catch (InvalidDataException e) { throw new ApiException(400, $"malformed multipart body: {e.Message}", "file", "invalid_body"); }
        var file = form.Files.GetFile("file") ?? form.Files.FirstOrDefault()
            ?? throw ApiException.BadRequest("file", "the multipart body has no file; upload the JSONL as field 'file'", "missing_required_parameter");
        using var buffer = new MemoryStream();
        await file.CopyToAsync(buffer, context.RequestAborted);
        return buffer.ToArray();
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
