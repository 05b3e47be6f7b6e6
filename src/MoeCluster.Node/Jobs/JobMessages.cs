namespace MoeCluster.Node.Jobs;

// Commands and queries sent to the JobManagerActor (and forwarded to the job's JobActor), with their replies.

/// <summary>Accept a job of JSONL lines (each one completion or chat request). Replies <see cref="JobStatus"/>.
/// Idempotent: submitting an existing id again changes nothing and replies its status.</summary>
public sealed record SubmitJob(string JobId, IReadOnlyList<string> Lines);

/// <summary>Replies <see cref="JobStatus"/> or <see cref="JobNotFound"/>.</summary>
public sealed record GetJobStatus(string JobId);

/// <summary>Replies <see cref="JobResults"/> or <see cref="JobNotFound"/>.</summary>
public sealed record GetJobResults(string JobId);

/// <summary>Stops a job: lines not yet finished get no result (they are reported as cancelled). Replies <see cref="JobStatus"/>.</summary>
public sealed record CancelJob(string JobId);

public static class JobStates
{
    public const string InProgress = "in_progress";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";
}

/// <summary>Progress of a job: <see cref="Completed"/> lines have a result (<see cref="Failed"/> of them an error).</summary>
public sealed record JobStatus(string Id, string Status, int Total, int Completed, int Failed, long CreatedAt, long? FinishedAt)
{
    public string Object => "job";
}

/// <summary>One JSON object per line that has a result, in input order (and, for a cancelled job, a cancellation
/// error for each line that never ran).</summary>
public sealed record JobResults(JobStatus Status, IReadOnlyList<string> Lines);

public sealed record JobNotFound(string JobId);
