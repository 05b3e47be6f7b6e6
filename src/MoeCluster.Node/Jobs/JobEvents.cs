namespace MoeCluster.Node.Jobs;

// Events persisted by the job actors (Akka.Persistence, SQL journal). A job is rebuilt by replaying them, so they
// change only by adding new event types: the journal keeps events written by older versions.

/// <summary>A job was accepted with all of its lines (the raw JSONL text of each).</summary>
public sealed record JobSubmitted(string JobId, string[] Lines, long CreatedAt);

/// <summary>Line <see cref="Line"/> got its one result: the JSON text of its results line.</summary>
public sealed record LineCompleted(int Line, string Result, bool IsError, long At);

/// <summary>The job was cancelled; lines without a result never get one.</summary>
public sealed record JobCancelled(long At);

/// <summary>The job directory learned of a job (JobManagerActor's journal).</summary>
public sealed record JobRegistered(string JobId);

/// <summary>A job reached completed or cancelled; it is no longer resumed at start-up (JobManagerActor's journal).</summary>
public sealed record JobEnded(string JobId);
