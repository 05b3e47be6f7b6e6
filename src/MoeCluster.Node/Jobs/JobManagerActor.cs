using Akka.Actor;
using Akka.Persistence;

namespace MoeCluster.Node.Jobs;

/// <summary>The directory of batch jobs on this node (registered in Akka.Hosting's ActorRegistry). It persists which
/// jobs exist and which have ended; at start-up it starts a <see cref="JobActor"/> for every job that has not ended,
/// which replays its journal and resumes. Queries for ended jobs start their actor on demand.</summary>
public sealed class JobManagerActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    readonly IJobLineRunner runner;
    readonly int concurrency;
    readonly HashSet<string> known = [];
    readonly HashSet<string> ended = [];

    public override string PersistenceId => "moecluster-jobs";

    public static Props Props(IJobLineRunner runner, int concurrency) => Akka.Actor.Props.Create(() => new JobManagerActor(runner, concurrency));

    public JobManagerActor(IJobLineRunner runner, int concurrency)
    {
        this.runner = runner;
        this.concurrency = concurrency;
        JournalPluginId = JobActor.JournalPlugin;
        SnapshotPluginId = JobActor.SnapshotPlugin;

        Recover<JobRegistered>(e => known.Add(e.JobId));
        Recover<JobEnded>(e => ended.Add(e.JobId));
        Recover<RecoveryCompleted>(_ =>
        {
            foreach (var id in known.Except(ended)) Job(id);
        });

        Command<SubmitJob>(submit =>
        {
            if (known.Contains(submit.JobId)) { Job(submit.JobId).Forward(submit); return; }
            Persist(new JobRegistered(submit.JobId), e =>
            {
                known.Add(e.JobId);
                Job(e.JobId).Forward(submit);
            });
        });
        Command<GetJobStatus>(q => Route(q.JobId, q));
        Command<GetJobResults>(q => Route(q.JobId, q));
        Command<CancelJob>(q => Route(q.JobId, q));
        Command<JobEnded>(e =>
        {
            if (ended.Contains(e.JobId)) return;
            Persist(e, ev => ended.Add(ev.JobId));
        });
        Command<Terminated>(t =>
        {
            // A job actor stopped (e.g. its journal write failed): restart unfinished jobs after a pause.
            string id = t.ActorRef.Path.Name["job-".Length..];
            if (!ended.Contains(id)) Timers.StartSingleTimer(("restart", id), new Restart(id), TimeSpan.FromSeconds(1));
        });
        Command<Restart>(r => Job(r.JobId));
    }

    sealed record Restart(string JobId);

    void Route(string jobId, object query)
    {
        if (!known.Contains(jobId)) { Sender.Tell(new JobNotFound(jobId)); return; }
        Job(jobId).Forward(query);
    }

    IActorRef Job(string jobId)
    {
        var child = Context.Child("job-" + jobId);
        if (!child.IsNobody()) return child;
        child = Context.ActorOf(JobActor.Props(jobId, runner, concurrency), "job-" + jobId);
        Context.Watch(child);
        return child;
    }
}
