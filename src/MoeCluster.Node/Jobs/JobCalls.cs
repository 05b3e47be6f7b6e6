using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Files;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>How the HTTP layer talks to jobs (shared by /v1/jobs, /v1/batches and the batch output files): asks with a
/// timeout, a 503 when the job store does not answer, a 404 naming the id, a 4xx when a submission is rejected.</summary>
public static class JobCalls
{
    static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(15);

    public static Task<JobStatus> StatusAsync(HttpContext context, string id) =>
        AskAsync<JobStatus>(context, Region(context), new GetJobStatus(id), id);

    public static Task<JobResults> ResultsAsync(HttpContext context, string id) =>
        AskAsync<JobResults>(context, Region(context), new GetJobResults(id), id);

    public static Task<JobStatus> CancelAsync(HttpContext context, string id) =>
        AskAsync<JobStatus>(context, Region(context), new CancelJob(id), id);

    public static Task<JobStatus> SubmitAsync(HttpContext context, SubmitJob submit) =>
        AskAsync<JobStatus>(context, Directory(context), submit, submit.JobId);

    public static Task<JobList> ListAsync(HttpContext context, ListJobs list) =>
        AskAsync<JobList>(context, Directory(context), list, null);

    /// <summary>Stores an uploaded temporary file in the shared file store under a new id.</summary>
    public static async Task<StoredFile> StoreAsync(HttpContext context, string path, long bytes, string fileName, string purpose)
    {
        var store = context.RequestServices.GetRequiredService<FileStore>();
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var file = new StoredFile("file-" + Guid.NewGuid().ToString("N")[..24], purpose, fileName, bytes, now, now + (long)options.Retention.TotalSeconds);
        await store.SaveAsync(file, path, context.RequestAborted);
        return file;
    }

    static async Task<T> AskAsync<T>(HttpContext context, IActorRef target, object message, string? id)
    {
        object reply;
        try { reply = await target.Ask<object>(message, AskTimeout, context.RequestAborted); }
        catch (AskTimeoutException)
        {
            if (context.RequestServices.GetService<JobStoreHealth>()?.Current is { Usable: false } down) throw JobStoreFaults.Unusable(down);
            throw new ApiException(503, $"the job store did not answer within {AskTimeout.TotalSeconds:0} s; retry later", null, "jobs_unavailable", "server_error");
        }
        return reply switch
        {
            T t => t,
            JobNotFound nf => throw new ApiException(404, $"no job or batch with id '{nf.JobId}'", "id", "not_found"),
            JobRejected r => throw new ApiException(r.HttpStatus, r.Message, r.Param, r.Code, r.HttpStatus >= 500 ? "server_error" : ApiException.InvalidRequest),
            Status.Failure f => throw new ApiException(503, $"the job store failed: {f.Cause.GetBaseException().Message}", null, "jobs_unavailable", "server_error"),
            _ => throw new InvalidOperationException($"unexpected reply {reply.GetType().Name} from the jobs for {id}"),
        };
    }

    static IActorRef Region(HttpContext context) => Lookup<JobRegionKey>(context);

    static IActorRef Directory(HttpContext context) => Lookup<JobDirectoryKey>(context);

    static IActorRef Lookup<TKey>(HttpContext context)
    {
        var registry = context.RequestServices.GetService<ActorRegistry>();
        if (registry is null || !registry.TryGet<TKey>(out var actor))
            throw new ApiException(503, "batch jobs are not enabled on this node", null, "jobs_disabled", "server_error");
        return actor;
    }
}
