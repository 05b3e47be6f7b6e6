using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using MoeCluster.Node.Files;

namespace MoeCluster.Node.Jobs;

/// <summary>The directory of batch jobs: one per cluster (a cluster singleton on the gateway role; in a single
/// process, a plain actor). It persists which jobs exist and which have ended, and
/// <list type="bullet">
/// <item>registers each submission before handing it to the job's entity (so it can be listed and resumed);</item>
/// <item>wakes every unfinished job every <see cref="WakeInterval"/>: the entity starts wherever its shard lives now,
/// so a job whose gateway died resumes on another one, and an expired batch notices it; while the job store is
/// unusable it wakes none (a job whose write failed has stopped, and resumes at the first wake after the store
/// recovers);</item>
/// <item>lists jobs newest first (GET /v1/batches);</item>
/// <item>deletes jobs and uploaded files whose retention has passed.</item>
/// </list>
/// Queries for one job go straight to its entity, not through here.</summary>
public sealed class JobDirectoryActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    public static readonly TimeSpan WakeInterval = TimeSpan.FromSeconds(2);
    static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    readonly IActorRef jobs;
    readonly FileStore files;
    readonly JobStoreHealth health;
    readonly TimeSpan retention;
    readonly ILoggingAdapter log = Context.GetLogger();
    /// <summary>Job ids in registration order (oldest first).</summary>
    readonly List<string> order = [];
    readonly HashSet<string> known = [];
    readonly Dictionary<string, long> ended = [];
    /// <summary>Why the last wake found the store unusable (null while it is usable): logged once per outage.</summary>
    string? storeDown;
    /// <summary>The submission whose registration is being written: told why when the journal fails it.</summary>
    IActorRef? awaitingWrite;

    public override string PersistenceId => "moecluster-jobs";

    public static Props Props(IActorRef jobs, FileStore files, JobStoreHealth health, TimeSpan retention) =>
        Akka.Actor.Props.Create(() => new JobDirectoryActor(jobs, files, health, retention));

    sealed record Wake;
    sealed record StoreChecked(JobStoreState State);
    sealed record Sweep;
    sealed record SweepDone(int Files);

    public JobDirectoryActor(IActorRef jobs, FileStore files, JobStoreHealth health, TimeSpan retention)
    {
        this.jobs = jobs;
        this.files = files;
        this.health = health;
        this.retention = retention;
        JournalPluginId = JobActor.JournalPlugin;
        SnapshotPluginId = JobActor.SnapshotPlugin;

        Recover<JobRegistered>(e => Register(e.JobId));
        Recover<JobEnded>(e => ended[e.JobId] = e.At > 0 ? e.At : Now);
        Recover<JobDeleted>(e => Forget(e.JobId));
        Recover<RecoveryCompleted>(_ =>
        {
            Timers.StartPeriodicTimer("wake", new Wake(), TimeSpan.Zero, WakeInterval);
            var sweep = TimeSpan.FromSeconds(Math.Clamp(retention.TotalSeconds / 4, 1, 60));
            Timers.StartPeriodicTimer("sweep", new Sweep(), sweep, sweep);
        });

        Command<SubmitJob>(submit =>
        {
            if (known.Contains(submit.JobId)) { jobs.Forward(submit); return; }
            var sender = Sender;
            awaitingWrite = sender;
            Persist(new JobRegistered(submit.JobId), e =>
            {
                awaitingWrite = null;
                Register(e.JobId);
                jobs.Tell(submit, sender);
            });
        });
        Command<JobEnded>(e =>
        {
            if (!known.Contains(e.JobId) || ended.ContainsKey(e.JobId)) return;
            Persist(e, ev => ended[ev.JobId] = ev.At > 0 ? ev.At : Now);
        });
        Command<JobNotFound>(nf =>
        {   // a registered job whose submission never reached its entity (its gateway died in between)
            if (!known.Contains(nf.JobId) || ended.ContainsKey(nf.JobId)) return;
            log.Warning("job {0} was registered but never accepted; forgetting it", nf.JobId);
            Persist(new JobDeleted(nf.JobId), e => Forget(e.JobId));
        });
        Command<Wake>(_ => health.CheckAsync(CancellationToken.None).PipeTo(Self, success: s => new StoreChecked(s), failure: e => new Status.Failure(e)));
        Command<StoreChecked>(c =>
        {
            if (!c.State.Usable)
            {
                if (storeDown is null) log.Warning("job store unusable ({0}); no job resumes until it recovers", c.State.Detail);
                storeDown = c.State.Detail;
                return;
            }
            if (storeDown is not null) log.Info("job store usable again (it was: {0}); resuming unfinished jobs", storeDown);
            storeDown = null;
            foreach (var id in order) if (!ended.ContainsKey(id)) jobs.Tell(new WakeJob(id));
        });
        Command<Sweep>(_ =>
        {
            long cutoff = Now - (long)retention.TotalSeconds;
            foreach (var (id, at) in ended.Where(e => e.Value <= cutoff).ToList())
            {
                jobs.Tell(new DeleteJob(id));
                Persist(new JobDeleted(id), e => Forget(e.JobId));
            }
            files.DeleteExpiredAsync(Now, CancellationToken.None).PipeTo(Self, success: n => new SweepDone(n), failure: e => new Status.Failure(e));
        });
        Command<SweepDone>(d => { if (d.Files > 0) log.Info("deleted {0} files past their retention", d.Files); });
        Command<Status.Failure>(f => log.Warning("file retention sweep failed: {0}", f.Cause.Message));
        Command<ListJobs>(List);
    }

    static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The journal failed a write: this actor stops (its backoff supervisor starts it again) and the submitter
    /// is told why at once instead of waiting out its ask.</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        health.ReportFailure(cause, health.Journal, "write");
        log.Warning("The job directory could not write {0} ({1}); restarting once the journal answers", @event.GetType().Name, health.Current.Detail);
        awaitingWrite?.Tell(JobStoreFaults.Rejected((@event as JobRegistered)?.JobId ?? "", health.Current));
        awaitingWrite = null;
        Context.Stop(Self);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        health.ReportFailure(reason, health.Journal, "recovery");
        log.Error("The job directory cannot read the job journal: {0}; retrying with backoff", health.Current.Detail);
        Context.Stop(Self);
    }

    void Register(string id)
    {
        if (known.Add(id)) order.Add(id);
    }

    void Forget(string id)
    {
        known.Remove(id);
        ended.Remove(id);
        order.Remove(id);
    }

    void List(ListJobs q)
    {
        var newestFirst = Enumerable.Range(0, order.Count).Select(i => order[order.Count - 1 - i])
            .Where(id => !q.BatchesOnly || id.StartsWith("batch_", StringComparison.Ordinal));
        if (q.After is { } after) newestFirst = newestFirst.SkipWhile(id => id != after).Skip(1);
        var page = newestFirst.Take(q.Limit + 1).ToList();
        bool hasMore = page.Count > q.Limit;
        var ids = page.Take(q.Limit).ToList();
        var asks = ids.Select(id => jobs.Ask<object>(new GetJobStatus(id), AskTimeout));
        Task.WhenAll(asks).PipeTo(Sender, Self,
            replies => new JobList(replies.OfType<JobStatus>().ToList(), hasMore),
            e => new Status.Failure(e));
    }
}
