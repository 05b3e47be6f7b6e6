namespace MoeCluster.Node.Jobs;

// Commands and queries of batch jobs, with their replies. Every job is one entity (JobActor) addressed by its id:
// in a cluster a sharding entity on the gateway role, in a single process a child of the local job host. Submissions
// go through the job directory (JobDirectoryActor, one per cluster) so it can list, resume and expire jobs.

/// <summary>Carries the id of the job it addresses (the sharding entity id).</summary>
public interface IJobMessage { string JobId { get; } }

/// <summary>What a job created through POST /v1/batches also records (the Batch API's fields).</summary>
public sealed record BatchInfo(string Endpoint, string CompletionWindow, IReadOnlyDictionary<string, string>? Metadata);

/// <summary>Accept a job whose JSONL lines are the stored file <see cref="InputFileId"/> (each line one completion or
/// chat request; for a batch, OpenAI batch lines checked against <see cref="Batch"/>). Replies <see cref="JobStatus"/>,
/// or <see cref="JobRejected"/> when the input cannot be read. Idempotent: an existing id replies its status.</summary>
public sealed record SubmitJob(string JobId, string InputFileId, BatchInfo? Batch = null) : IJobMessage;

/// <summary>Replies <see cref="JobStatus"/> or <see cref="JobNotFound"/>.</summary>
public sealed record GetJobStatus(string JobId) : IJobMessage;

/// <summary>Replies <see cref="JobResults"/> or <see cref="JobNotFound"/>.</summary>
public sealed record GetJobResults(string JobId) : IJobMessage;

/// <summary>Stops a job: lines not yet finished get no result (they are reported as cancelled). Replies <see cref="JobStatus"/>.</summary>
public sealed record CancelJob(string JobId) : IJobMessage;

/// <summary>The directory's periodic nudge to every unfinished job: it starts the entity wherever its shard lives now
/// (so a job whose node died resumes on another gateway) and lets it notice it has expired. Replies nothing, or
/// <see cref="JobNotFound"/> for a job that was never accepted.</summary>
public sealed record WakeJob(string JobId) : IJobMessage;

/// <summary>Retention ended: the job deletes its journal and stops. Replies nothing.</summary>
public sealed record DeleteJob(string JobId) : IJobMessage;

/// <summary>To the directory: the newest jobs first, after the job <see cref="After"/> (a cursor), at most
/// <see cref="Limit"/>; only batches (ids starting batch_) when <see cref="BatchesOnly"/>. Replies <see cref="JobList"/>.</summary>
public sealed record ListJobs(string? After, int Limit, bool BatchesOnly);

public sealed record JobList(IReadOnlyList<JobStatus> Jobs, bool HasMore);

public static class JobStates
{
    public const string InProgress = "in_progress";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";
    /// <summary>A batch whose input broke OpenAI's rules (see <see cref="JobStatus.Errors"/>); no line ran.</summary>
    public const string Failed = "failed";
    /// <summary>A batch still unfinished when its completion window ended; lines without a result never get one.</summary>
    public const string Expired = "expired";
}

/// <summary>One reason a batch's input was refused, as OpenAI reports it (<c>errors.data[]</c>).</summary>
public sealed record BatchError(string Code, string Message, string? Param, int? Line);

/// <summary>Progress of a job: <see cref="Completed"/> lines have a result (<see cref="Failed"/> of them an error).
/// <see cref="Node"/> is the cluster address of the gateway running it.</summary>
public sealed record JobStatus(string Id, string Status, int Total, int Completed, int Failed, long CreatedAt, long? FinishedAt)
{
    public string Object => "job";
    public string? InputFileId { get; init; }
    public BatchInfo? Batch { get; init; }
    public IReadOnlyList<BatchError>? Errors { get; init; }
    public long? ExpiresAt { get; init; }
    public string? Node { get; init; }
    [System.Text.Json.Serialization.JsonIgnore, Newtonsoft.Json.JsonIgnore] public bool Terminal => Status != JobStates.InProgress;
}

/// <summary>One JSON object per line that has a result, in input order (and, for a cancelled or expired job, an
/// error for each line that never ran).</summary>
public sealed record JobResults(JobStatus Status, IReadOnlyList<string> Lines);

public sealed record JobNotFound(string JobId);

/// <summary>The job was not accepted: its input file is missing or unreadable, or the job store failed the write.</summary>
public sealed record JobRejected(string JobId, int HttpStatus, string Message, string? Param, string Code);
