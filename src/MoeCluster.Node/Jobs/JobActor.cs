using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>One batch job, event sourced (<see cref="JobSubmitted"/>, <see cref="LineCompleted"/>,
/// <see cref="JobCancelled"/>). Runs at most <c>concurrency</c> lines at once; each finished line is persisted before
/// the next is started in its place. After a restart the journal replays and every line without a persisted result
/// runs again — a line that was in flight at the crash runs once more, a completed one never does, and a result
/// arriving for a line that already has one is dropped, so every line ends with exactly one result.</summary>
public sealed class JobActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    public const string JournalPlugin = "akka.persistence.journal.sql";
    public const string SnapshotPlugin = "akka.persistence.snapshot-store.sql";

    readonly string jobId;
    readonly IJobLineRunner runner;
    readonly int concurrency;
    readonly ILoggingAdapter log = Context.GetLogger();
    readonly CancellationTokenSource stopping = new();
    readonly HashSet<int> inFlight = [];
    readonly Queue<int> pending = new();

    string[]? lines;
    string?[] results = [];
    bool[] failed = [];
    int completed;
    long createdAt;
    long? finishedAt;
    bool cancelled;

    public override string PersistenceId => "job-" + jobId;

    public static Props Props(string jobId, IJobLineRunner runner, int concurrency) =>
        Akka.Actor.Props.Create(() => new JobActor(jobId, runner, concurrency));

    public JobActor(string jobId, IJobLineRunner runner, int concurrency)
    {
        this.jobId = jobId;
        this.runner = runner;
        this.concurrency = Math.Max(1, concurrency);
        JournalPluginId = JournalPlugin;
        SnapshotPluginId = SnapshotPlugin;

        Recover<JobSubmitted>(Apply);
        Recover<LineCompleted>(Apply);
        Recover<JobCancelled>(Apply);
        Recover<RecoveryCompleted>(_ =>
        {
            if (lines is null || Terminal) return;
            log.Info("Resuming job {0}: {1} of {2} lines done", jobId, completed, lines.Length);
            RunPending();
        });

        Command<SubmitJob>(submit =>
        {
            if (lines is not null) { Sender.Tell(Status()); return; }
            var e = new JobSubmitted(jobId, submit.Lines.ToArray(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            Persist(e, ev =>
            {
                Apply(ev);
                Sender.Tell(Status());
                if (Terminal) Context.Parent.Tell(new JobEnded(jobId));
                else RunPending();
            });
        });
        Command<GetJobStatus>(_ => Sender.Tell(lines is null ? new JobNotFound(jobId) : Status()));
        Command<GetJobResults>(_ => Sender.Tell(lines is null ? new JobNotFound(jobId) : new JobResults(Status(), ResultLines())));
        Command<CancelJob>(_ =>
        {
            if (lines is null) { Sender.Tell(new JobNotFound(jobId)); return; }
            if (Terminal) { Sender.Tell(Status()); return; }
            Persist(new JobCancelled(DateTimeOffset.UtcNow.ToUnixTimeSeconds()), ev =>
            {
                Apply(ev);
                stopping.Cancel();
                Sender.Tell(Status());
                Context.Parent.Tell(new JobEnded(jobId));
            });
        });
        Command<LineFinished>(done =>
        {
            inFlight.Remove(done.Line);
            if (cancelled || results[done.Line] is not null) return;
            Persist(new LineCompleted(done.Line, done.Result, done.IsError, DateTimeOffset.UtcNow.ToUnixTimeSeconds()), ev =>
            {
                Apply(ev);
                if (Terminal) Context.Parent.Tell(new JobEnded(jobId));
                else RunPending();
            });
        });
        Command<LineDeferred>(deferred =>
        {
            inFlight.Remove(deferred.Line);
            if (cancelled) return;
            Timers.StartSingleTimer(("retry", deferred.Line), new RetryLine(deferred.Line), deferred.Delay);
        });
        Command<RetryLine>(retry =>
        {
            if (cancelled || results[retry.Line] is not null) return;
            pending.Enqueue(retry.Line);
            RunPending();
        });
        Command<LineAbandoned>(a => inFlight.Remove(a.Line));
        Command<Status.Failure>(f => log.Error(f.Cause, "A line of job {0} failed unexpectedly", jobId));
    }

    sealed record RetryLine(int Line);

    bool Terminal => cancelled || (lines is not null && completed == lines.Length);

    void Apply(JobSubmitted e)
    {
        lines = e.Lines;
        results = new string?[e.Lines.Length];
        failed = new bool[e.Lines.Length];
        createdAt = e.CreatedAt;
        for (int i = 0; i < e.Lines.Length; i++) pending.Enqueue(i);
        if (e.Lines.Length == 0) finishedAt = e.CreatedAt;
    }

    void Apply(LineCompleted e)
    {
        if (results[e.Line] is not null) return;  // a duplicate write cannot add a second result
        results[e.Line] = e.Result;
        failed[e.Line] = e.IsError;
        completed++;
        if (completed == results.Length) finishedAt = e.At;
    }

    void Apply(JobCancelled e)
    {
        cancelled = true;
        finishedAt ??= e.At;
        pending.Clear();
    }

    void RunPending()
    {
        while (inFlight.Count < concurrency && pending.TryDequeue(out int line))
        {
            if (results[line] is not null || !inFlight.Add(line)) continue;
            var task = runner.RunAsync(line, lines![line], stopping.Token);
            task.PipeTo(Self, Self, failure: e => JobLineRunner.Failed(line, null,
                new ApiErrorBody($"the line failed: {e.GetBaseException().Message}", "server_error", null, "internal_error")));
        }
    }

    JobStatus Status() => new(jobId,
        cancelled ? JobStates.Cancelled : Terminal ? JobStates.Completed : JobStates.InProgress,
        lines?.Length ?? 0, completed, failed.Count(f => f), createdAt, finishedAt);

    List<string> ResultLines()
    {
        var list = new List<string>(completed);
        for (int i = 0; i < results.Length; i++)
        {
            if (results[i] is { } r) list.Add(r);
            else if (cancelled)
                list.Add(JobLineRunner.Failed(i, null, new ApiErrorBody("the job was cancelled before this line finished", "cancelled", null, "job_cancelled")).Result);
        }
        return list;
    }

    protected override void PostStop()
    {
        // In-flight lines stop generating; they have no persisted result, so a resumed job runs them again.
        stopping.Cancel();
        stopping.Dispose();
        base.PostStop();
    }
}
