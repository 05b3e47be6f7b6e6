using Akka.Actor;
using MoeCluster.Node.Http;
using MoeCluster.Node.Jobs;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>The job directory alone, with a probe standing in for the job entities, on a real SQLite journal on a
/// size-limited tmpfs: a registration the full disk refuses is answered at once with a 507 naming the problem (not left
/// to the HTTP ask's timeout), no job is woken while the store is unusable, and once space returns the backoff
/// supervisor has the directory back, with the jobs it knew, without restarting anything else.</summary>
public sealed class JobDirectoryStoreFaultSpec : Akka.TestKit.Xunit2.TestKit
{
    readonly SmallFilesystem disk;
    readonly ServingOptions options;

    public JobDirectoryStoreFaultSpec() : this(new SmallFilesystem(4 << 20)) { }

    JobDirectoryStoreFaultSpec(SmallFilesystem disk) : this(disk, new ServingOptions { DataDirectory = disk.Path }) { }

    JobDirectoryStoreFaultSpec(SmallFilesystem disk, ServingOptions options) : base(JobsHosting.JournalHocon(options))
    {
        this.disk = disk;
        this.options = options;
    }

    [Fact]
    public async Task A_refused_registration_is_answered_at_once_and_the_supervised_directory_returns_with_its_jobs_when_space_does()
    {
        var jobs = CreateTestProbe();
        var health = JobsHosting.StoreHealth(options);
        var directory = Sys.ActorOf(JobsHosting.SupervisedDirectory(
            JobDirectoryActor.Props(jobs.Ref, JobsHosting.Files(options), health, TimeSpan.FromHours(1))), "job-directory");

        directory.Tell(new SubmitJob("job_before", "file-a"));
        await jobs.FishForMessageAsync(m => m is SubmitJob { JobId: "job_before" }, TimeSpan.FromSeconds(10));
        await jobs.FishForMessageAsync(m => m is WakeJob { JobId: "job_before" }, TimeSpan.FromSeconds(10));

        disk.Fill();
        directory.Tell(new SubmitJob("job_during", "file-b"));
        var rejected = await ExpectMsgAsync<JobRejected>(TimeSpan.FromSeconds(10));
        Assert.Equal(507, rejected.HttpStatus);
        Assert.Contains("job store unusable: disk full", rejected.Message);
        Assert.Contains(options.SqliteJournalPath, rejected.Message);
        // Past two wake intervals: the stopped directory (or the one its supervisor started again) wakes nothing.
        await jobs.ExpectNoMsgAsync(JobDirectoryActor.WakeInterval * 2 + TimeSpan.FromMilliseconds(500));

        disk.Free();
        await AwaitAssertAsync(async () =>
        {
            directory.Tell(new SubmitJob("job_after", "file-c"));
            await jobs.FishForMessageAsync(m => m is SubmitJob { JobId: "job_after" }, TimeSpan.FromSeconds(1));
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
        // The directory read its journal back: the job registered before the fault is woken again; the refused one
        // was never registered.
        await jobs.FishForMessageAsync(m => m is WakeJob { JobId: "job_before" }, TimeSpan.FromSeconds(10));
        directory.Tell(new ListJobs(null, 10, BatchesOnly: false));
        await jobs.FishForMessageAsync(m => m is GetJobStatus { JobId: "job_after" }, TimeSpan.FromSeconds(10));
        Assert.True((await health.CheckAsync(CancellationToken.None)).Usable);
    }

    protected override void AfterAll()
    {
        base.AfterAll();
        disk.Dispose();
    }
}
