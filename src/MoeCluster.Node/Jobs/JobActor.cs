using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using MoeCluster.Node.Files;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>One batch job, event sourced under its own persistence id (<c>job-{id}</c>), so any gateway can run it
/// and two jobs never share a journal stream. States: <see cref="Empty"/> (no job yet: a submission reads the input
/// file), <see cref="Loading"/> (reading it; other messages wait), <see cref="Running"/> (at most <c>concurrency</c>
/// lines at once, each finished line persisted before the next starts in its place) and <see cref="Ended"/>.
/// After a restart — here, or on another gateway after this one died — the journal replays and every line without a
/// persisted result runs again: a line in flight at the crash runs once more, a completed one never does, and a result
/// for a line that already has one is dropped, so every line ends with exactly one result.</summary>
public sealed class JobActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    public const string JournalPlugin = "akka.persistence.journal.sql";
    public const string SnapshotPlugin = "akka.persistence.snapshot-store.sql";
    /// <summary>An ended job unvisited this long leaves memory (it is replayed from the journal when asked again).</summary>
    static readonly TimeSpan IdleAfterEnd = TimeSpan.FromMinutes(2);

    readonly string jobId;
    readonly IJobLineRunner runner;
    readonly FileStore files;
    readonly JobStoreHealth health;
    readonly int concurrency;
    readonly Func<IActorRef> directory;
    readonly string node;
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
    string? inputFileId;
    BatchInfo? batch;
    long? expiresAt;
    BatchError[]? errors;
    string state = JobStates.InProgress;
    /// <summary>Who waits for the write in progress (a submission, a cancel): told why when the journal fails it.</summary>
    IActorRef? awaitingWrite;

    public override string PersistenceId => "job-" + jobId;

    public static Props Props(string jobId, IJobLineRunner runner, FileStore files, JobStoreHealth health, int concurrency, Func<IActorRef> directory) =>
        Akka.Actor.Props.Create(() => new JobActor(jobId, runner, files, health, concurrency, directory));

    sealed record InputRead(SubmitJob Submit, IActorRef ReplyTo, byte[] Bytes);
    sealed record InputUnreadable(SubmitJob Submit, IActorRef ReplyTo, JobRejected Reason);
    sealed record RetryLine(int Line);

    public JobActor(string jobId, IJobLineRunner runner, FileStore files, JobStoreHealth health, int concurrency, Func<IActorRef> directory)
    {
        this.jobId = jobId;
        this.runner = runner;
        this.files = files;
        this.health = health;
        this.concurrency = Math.Max(1, concurrency);
        this.directory = directory;
        node = Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal)
            ? Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString() : "local";
        JournalPluginId = JournalPlugin;
        SnapshotPluginId = SnapshotPlugin;

        Recover<JobSubmitted>(Apply);
        Recover<BatchDescribed>(Apply);
        Recover<LineCompleted>(Apply);
        Recover<JobCancelled>(Apply);
        Recover<JobFailed>(Apply);
        Recover<JobExpired>(Apply);
        Recover<RecoveryCompleted>(_ =>
        {
            if (lines is null) { Become(Empty); return; }
            if (Terminal) { BecomeEnded(); return; }
            log.Info("Resuming job {0} on {1}: {2} of {3} lines done", jobId, node, completed, lines.Length);
            Become(Running);
            RunPending();
        });
    }

    bool Terminal => state != JobStates.InProgress;

    static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>No job with this id: a submission starts one; anything else is answered "not found".</summary>
    void Empty()
    {
        Command<SubmitJob>(submit =>
        {
            var replyTo = Sender;
            files.ReadAllAsync(submit.InputFileId, CancellationToken.None).PipeTo(Self, Self,
                bytes => new InputRead(submit, replyTo, bytes),
                e => new InputUnreadable(submit, replyTo, Unreadable(e)));
            Become(Loading);
        });
        Command<WakeJob>(_ => { Sender.Tell(new JobNotFound(jobId)); Leave(); });
        Command<DeleteJob>(_ => Leave());
        CommandAny(_ => { Sender.Tell(new JobNotFound(jobId)); Leave(); });
    }

    void Loading()
    {
        Command<InputRead>(read =>
        {
            List<string> split;
            try { split = JobsEndpoints.SplitLines(read.Bytes, int.MaxValue); }
            catch (ApiException e)
            {
                read.ReplyTo.Tell(new JobRejected(jobId, e.Status, e.Message, "input_file_id", e.Code ?? "invalid_file"));
                Stash.UnstashAll();
                Become(Empty);
                return;
            }
            var events = new List<object> { new JobSubmitted(jobId, split.ToArray(), Now) };
            if (read.Submit.Batch is { } b)
            {
                events.Add(new BatchDescribed(b, read.Submit.InputFileId, Now + CompletionWindow(b)));
                var invalid = BatchInput.Validate(split, b.Endpoint);
                if (invalid.Length > 0) events.Add(new JobFailed(invalid, Now));
            }
            awaitingWrite = read.ReplyTo;
            PersistAll(events, e =>
            {
                Apply(e);
                if (!ReferenceEquals(e, events[^1])) return;
                awaitingWrite = null;
                read.ReplyTo.Tell(Status());
                Stash.UnstashAll();
                if (Terminal) { directory().Tell(new JobEnded(jobId, finishedAt ?? Now)); BecomeEnded(); }
                else { Become(Running); RunPending(); }
            });
        });
        Command<InputUnreadable>(u =>
        {
            u.ReplyTo.Tell(u.Reason);
            Stash.UnstashAll();
            Become(Empty);
        });
        CommandAny(_ => Stash.Stash());
    }

    void Running()
    {
        Queries();
        Command<CancelJob>(_ => End(new JobCancelled(Now)));
        Command<WakeJob>(_ =>
        {
            if (expiresAt is { } at && Now >= at) End(new JobExpired(Now));
        });
        Command<LineFinished>(done =>
        {
            inFlight.Remove(done.Line);
            if (results[done.Line] is not null) return;
            Persist(new LineCompleted(done.Line, done.Result, done.IsError, Now), ev =>
            {
                Apply(ev);
                if (Terminal) Ending();
                else RunPending();
            });
        });
        Command<LineDeferred>(deferred =>
        {
            inFlight.Remove(deferred.Line);
            Timers.StartSingleTimer(("retry", deferred.Line), new RetryLine(deferred.Line), deferred.Delay);
        });
        Command<RetryLine>(retry =>
        {
            if (results[retry.Line] is not null) return;
            pending.Enqueue(retry.Line);
            RunPending();
        });
        Command<LineAbandoned>(a => inFlight.Remove(a.Line));
        Command<Status.Failure>(f => log.Error(f.Cause, "A line of job {0} failed unexpectedly", jobId));
        Command<DeleteJob>(_ => { });   // never while running: retention starts when a job ends
    }

    /// <summary>Terminal: answers queries, ignores late line outcomes, deletes itself when retention ends.</summary>
    void Ended()
    {
        Queries();
        Command<CancelJob>(_ => Sender.Tell(Status()));
        Command<WakeJob>(_ => directory().Tell(new JobEnded(jobId, finishedAt ?? Now)));   // the directory missed the end
        Command<LineOutcome>(_ => { });
        Command<Status.Failure>(_ => { });
        Command<RetryLine>(_ => { });
        Command<DeleteJob>(_ => DeleteMessages(long.MaxValue));
        Command<DeleteMessagesSuccess>(_ => { log.Info("Job {0} deleted after its retention", jobId); Leave(); });
        Command<DeleteMessagesFailure>(f => log.Warning("Job {0}: deleting its journal failed: {1}", jobId, f.Cause.Message));
        Command<ReceiveTimeout>(_ => Leave());
    }

    void Queries()
    {
        Command<SubmitJob>(_ => Sender.Tell(Status()));
        Command<GetJobStatus>(_ => Sender.Tell(Status()));
        Command<GetJobResults>(_ => Sender.Tell(new JobResults(Status(), ResultLines())));
    }

    void End(object terminal)
    {
        awaitingWrite = Sender;
        Persist(terminal, ev =>
        {
            awaitingWrite = null;
            Apply(ev);
            stopping.Cancel();
            Sender.Tell(Status());
            Ending();
        });
    }

    void Ending()
    {
        directory().Tell(new JobEnded(jobId, finishedAt ?? Now));
        BecomeEnded();
    }

    void BecomeEnded()
    {
        Become(Ended);
        SetReceiveTimeout(IdleAfterEnd);
    }

    /// <summary>Stops this entity: through the shard (passivation, so no message is lost), or the local job host.</summary>
    void Leave() => Context.Parent.Tell(new Passivate(PoisonPill.Instance));

    static long CompletionWindow(BatchInfo b) =>
        b.CompletionWindow.EndsWith('h') && int.TryParse(b.CompletionWindow[..^1], out int hours) ? hours * 3600L : 24 * 3600L;

    void Apply(object e)
    {
        switch (e)
        {
            case JobSubmitted x: Apply(x); break;
            case BatchDescribed x: Apply(x); break;
            case JobCancelled x: Apply(x); break;
            case JobFailed x: Apply(x); break;
            case JobExpired x: Apply(x); break;
            default: throw new ArgumentException($"not a job event: {e.GetType().Name}");
        }
    }

    void Apply(JobSubmitted e)
    {
        lines = e.Lines;
        results = new string?[e.Lines.Length];
        failed = new bool[e.Lines.Length];
        createdAt = e.CreatedAt;
        for (int i = 0; i < e.Lines.Length; i++) pending.Enqueue(i);
        if (e.Lines.Length == 0) { finishedAt = e.CreatedAt; state = JobStates.Completed; }
    }

    void Apply(BatchDescribed e)
    {
        batch = e.Batch;
        inputFileId = e.InputFileId;
        expiresAt = e.ExpiresAt;
    }

    void Apply(LineCompleted e)
    {
        if (results[e.Line] is not null) return;  // a duplicate write cannot add a second result
        results[e.Line] = e.Result;
        failed[e.Line] = e.IsError;
        completed++;
        if (completed == results.Length && !Terminal) { finishedAt = e.At; state = JobStates.Completed; }
    }

    void Apply(JobCancelled e) => Stop(JobStates.Cancelled, e.At);

    void Apply(JobExpired e) => Stop(JobStates.Expired, e.At);

    void Apply(JobFailed e)
    {
        errors = e.Errors;
        Stop(JobStates.Failed, e.At);
    }

    void Stop(string terminal, long at)
    {
        if (Terminal) return;
        state = terminal;
        finishedAt ??= at;
        pending.Clear();
    }

    void RunPending()
    {
        while (inFlight.Count < concurrency && pending.TryDequeue(out int line))
        {
            if (results[line] is not null || !inFlight.Add(line)) continue;
            var task = runner.RunAsync(line, lines![line], stopping.Token);
            task.PipeTo(Self, Self, failure: e => JobLineRunner.Failed(line, null, 500,
                new ApiErrorBody($"the line failed: {e.GetBaseException().Message}", "server_error", null, "internal_error")));
        }
    }

    JobStatus Status() => new(jobId, state, lines?.Length ?? 0, completed, failed.Count(f => f), createdAt, finishedAt)
    {
        InputFileId = inputFileId,
        Batch = batch,
        Errors = errors,
        ExpiresAt = expiresAt,
        Node = node,
    };

    List<string> ResultLines()
    {
        var list = new List<string>(completed);
        if (state == JobStates.Failed) return list;
        for (int i = 0; i < results.Length; i++)
        {
            if (results[i] is { } r) list.Add(r);
            else if (state is JobStates.Cancelled or JobStates.Expired)
                list.Add(JobLineRunner.Failed(i, JobLineRunner.CustomId(lines![i]), state == JobStates.Cancelled ? 499 : 408, state == JobStates.Cancelled
                    ? new ApiErrorBody("the job was cancelled before this line finished", "cancelled", null, "job_cancelled")
                    : new ApiErrorBody("the batch's completion window ended before this line ran", "expired", null, "batch_expired")).Result);
        }
        return list;
    }

    /// <summary>The journal failed a write: Akka.Persistence stops this entity (its state would no longer match the
    /// journal). Whoever waits for the write is told why; the lines of a running job that had no persisted result run
    /// again when the directory wakes the job after the store recovers, so none is answered twice.</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        health.ReportFailure(cause, health.Journal, "write");
        log.Warning("Job {0}: the journal failed to write {1} ({2}); stopping until the job store recovers", jobId, @event.GetType().Name, health.Current.Detail);
        TellWriteFailed();
        Context.Stop(Self);
    }

    /// <summary>The journal refused an event (it did not store it): stopped like a failed write, so the job resumes
    /// from what is stored instead of running on with a line that has no result.</summary>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        health.ReportFailure(cause, health.Journal, "write");
        log.Warning("Job {0}: the journal rejected {1} ({2}); stopping", jobId, @event.GetType().Name, cause.GetBaseException().Message);
        TellWriteFailed();
        Context.Stop(Self);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        health.ReportFailure(reason, health.Journal, "recovery");
        log.Warning("Job {0}: reading its journal failed ({1}); it resumes when the job store recovers", jobId, health.Current.Detail);
        Context.Stop(Self);
    }

    /// <summary>The input file could not be read: the store failing is a 503 naming it, anything else a 500.</summary>
    JobRejected Unreadable(Exception e)
    {
        if (!JobStoreFaults.IsStoreFault(e))
            return new JobRejected(jobId, 500, $"the input file could not be read: {e.GetBaseException().Message}", "input_file_id", "file_unreadable");
        health.ReportFailure(e, "the file store", "request");
        return JobStoreFaults.Rejected(jobId, health.Current, "input_file_id");
    }

    void TellWriteFailed()
    {
        awaitingWrite?.Tell(JobStoreFaults.Rejected(jobId, health.Current));
        awaitingWrite = null;
    }

    protected override void PostStop()
    {
        // In-flight lines stop generating; they have no persisted result, so a resumed job runs them again.
        stopping.Cancel();
        stopping.Dispose();
        base.PostStop();
    }
}
