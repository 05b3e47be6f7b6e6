namespace MoeCluster.Node.Jobs;

// Events persisted by the job actors (Akka.Persistence, SQL journal). A job is rebuilt by replaying them, so they
// change only by adding new event types: the journal keeps events written by older versions.

/// <summary>A job was accepted with all of its lines (the raw JSONL text of each).</summary>
public sealed record JobSubmitted(string JobId, string[] Lines, long CreatedAt);

/// <summary>The job was created through the Batch API: its endpoint, window and metadata, its input file, and when
/// its completion window ends.</summary>
public sealed record BatchDescribed(BatchInfo Batch, string InputFileId, long ExpiresAt);

/// <summary>Line <see cref="Line"/> got its one result: the JSON text of its results line.</summary>
public sealed record LineCompleted(int Line, string Result, bool IsError, long At);

/// <summary>The job was cancelled; lines without a result never get one.</summary>
public sealed record JobCancelled(long At);

/// <summary>The batch's input broke the Batch API's rules; no line runs.</summary>
public sealed record JobFailed(BatchError[] Errors, long At);

/// <summary>The batch's completion window ended before every line had a result.</summary>
public sealed record JobExpired(long At);

/// <summary>The job directory learned of a job (JobDirectoryActor's journal).</summary>
public sealed record JobRegistered(string JobId);

/// <summary>A job reached a terminal state at <see cref="At"/> (0 in journals written before it was recorded); it is
/// no longer resumed, and is deleted once its retention has passed (JobDirectoryActor's journal).</summary>
public sealed record JobEnded(string JobId, long At = 0);

/// <summary>A job's retention ended and it was deleted (JobDirectoryActor's journal).</summary>
public sealed record JobDeleted(string JobId);
