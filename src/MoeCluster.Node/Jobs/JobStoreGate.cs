using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace MoeCluster.Node.Jobs;

/// <summary>In front of /v1/jobs, /v1/batches and /v1/files: while the job store is unusable every call gets a
/// 503 (507 when the disk is full) naming the problem at once, instead of a journal write that waits out its
/// timeouts; a store failure inside a call (a full disk under an upload, a database error) becomes the same answer and
/// marks the store unusable until the next probe.</summary>
public sealed class JobStoreGate(RequestDelegate next)
{
    public static bool Guards(PathString path) =>
        path.StartsWithSegments("/v1/jobs") || path.StartsWithSegments("/v1/batches") || path.StartsWithSegments("/v1/files");

    public async Task InvokeAsync(HttpContext context)
    {
        var health = context.RequestServices.GetService<JobStoreHealth>();
        if (health is null || !Guards(context.Request.Path)) { await next(context); return; }
        var state = await health.CheckAsync(context.RequestAborted);
        if (!state.Usable) throw JobStoreFaults.Unusable(state);
        try { await next(context); }
        catch (Exception e) when (JobStoreFaults.IsStoreFault(e) && !context.Response.HasStarted)
        {
            bool upload = JobStoreFaults.IsDiskFull(e) && JobStoreFaults.Root(e) is IOException;
            health.ReportFailure(e, upload ? "the upload's temporary file" : "the job store", "request");
            throw JobStoreFaults.Unusable(health.Current.Detail + (upload ? "; nothing of the upload was kept" : ""), health.Current.DiskFull);
        }
    }
}
