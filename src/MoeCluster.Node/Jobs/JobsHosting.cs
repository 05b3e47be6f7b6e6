using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Singleton;
using Akka.Hosting;
using Akka.Pattern;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Files;
using MoeCluster.Node.Http;
using MoeCluster.Runtime;

namespace MoeCluster.Node.Jobs;

/// <summary>ActorRegistry keys: where to send one job's messages (the shard region, or the local job host), and the
/// job directory (the singleton's proxy, or the local directory).</summary>
public sealed class JobRegionKey;
public sealed class JobDirectoryKey;

/// <summary>Akka.Hosting setup for durable batch jobs: the SQL journal (SQLite file under the data directory, or
/// PostgreSQL when a connection string is given), the jobs and their directory. In a cluster every job is a sharding
/// entity on the gateway role and the directory a cluster singleton, so any gateway accepts, reports and resumes any
/// job; in one process both are plain actors.</summary>
public static class JobsHosting
{
    public const string JobTypeName = "job";
    const int Shards = 50;

    /// <summary>Adds the job journal's HOCON and starts jobs and directory. Needs <see cref="IJobLineRunner"/> and
    /// <see cref="FileStore"/> in DI (AddMoeClusterServing registers them).</summary>
    public static AkkaConfigurationBuilder AddMoeClusterJobs(this AkkaConfigurationBuilder builder, ServingOptions options, bool cluster = false)
    {
        builder.AddHocon(JournalHocon(options), HoconAddMode.Prepend);
        builder.WithActors((system, registry, resolver) =>
        {
            var runner = resolver.GetService<IJobLineRunner>();
            var files = resolver.GetService<FileStore>();
            var health = resolver.GetService<JobStoreHealth>();
            IActorRef? directory = null;
            Props Job(string id) => JobActor.Props(id, runner, files, health, options.JobConcurrency, () => directory!);
            Props JobDirectory(IActorRef jobs) => SupervisedDirectory(JobDirectoryActor.Props(jobs, files, health, options.Retention));
            IActorRef jobs;
            if (cluster)
            {
                var settings = ClusterShardingSettings.Create(system).WithRole(NodeRoles.Gateway);
                jobs = ClusterSharding.Get(system).Start(JobTypeName, Job, settings, new JobMessageExtractor(Shards));
                system.ActorOf(ClusterSingletonManager.Props(JobDirectory(jobs), PoisonPill.Instance,
                    ClusterSingletonManagerSettings.Create(system).WithRole(NodeRoles.Gateway)), "job-directory");
                directory = system.ActorOf(ClusterSingletonProxy.Props("/user/job-directory",
                    ClusterSingletonProxySettings.Create(system).WithRole(NodeRoles.Gateway)), "job-directory-proxy");
            }
            else
            {
                jobs = system.ActorOf(LocalJobHostActor.Props(Job), "jobs");
                directory = system.ActorOf(JobDirectory(jobs), "job-directory");
            }
            registry.Register<JobRegionKey>(jobs);
            registry.Register<JobDirectoryKey>(directory);
        });
        return builder;
    }

    /// <summary>The directory stops when the journal fails a write or its recovery (Akka.Persistence's rule: its state
    /// would no longer match the journal); a backoff supervisor starts it again, 0.5 s doubling to 10 s, so it is back
    /// within seconds of the store recovering, without hammering a store that is down.</summary>
    public static Props SupervisedDirectory(Props directory) =>
        BackoffSupervisor.Props(Backoff.OnStop(directory, "directory", TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10), 0.2, maxNrOfRetries: -1)
            .WithDefaultStoppingStrategy());

    /// <summary>The probe of the databases <see cref="JournalHocon"/> and <see cref="Files"/> use.</summary>
    public static JobStoreHealth StoreHealth(ServingOptions options) => options.JournalConnectionString is { Length: > 0 } pg
        ? JobStoreHealth.Postgres(pg)
        : JobStoreHealth.Sqlite(options.SqliteJournalPath, Path.Combine(Path.GetFullPath(options.DataDirectory), "files.db"));

    /// <summary>The store of uploaded files beside the journal: the same PostgreSQL database, or files.db next to jobs.db.</summary>
    public static FileStore Files(ServingOptions options) => options.JournalConnectionString is { Length: > 0 } pg
        ? FileStore.Postgres(pg)
        : FileStore.Sqlite(Path.Combine(Path.GetFullPath(options.DataDirectory), "files.db"));

    /// <summary>The journal and snapshot store at the plugin ids the job actors use (the node's default persistence
    /// plugins are left alone). Tables are created on first use.</summary>
    public static string JournalHocon(ServingOptions options)
    {
        string connection, provider;
        if (options.JournalConnectionString is { Length: > 0 } pg)
        {
            connection = pg;
            provider = "PostgreSQL.15";
        }
        else
        {
            Directory.CreateDirectory(Path.GetDirectoryName(options.SqliteJournalPath)!);
            // Default Timeout: how long a write waits on SQLite's file lock before failing; under the circuit
            // breaker's call timeout, so a lock held elsewhere fails the write with SQLite's own "database is locked".
            connection = $"Data Source={options.SqliteJournalPath};Default Timeout=8";
            provider = "SQLite.MS";
        }
        string c = Quote(connection), p = Quote(provider);
        return $$"""
            akka.persistence.journal.sql {
              class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
              connection-string = {{c}}
              provider-name = {{p}}
              auto-initialize = true
              # After 5 failed writes in a row the journal fails the next ones at once for 5 s (then tries one): a
              # store that is down is not hammered, and one that is back is used again within seconds.
              circuit-breaker { max-failures = 5, call-timeout = 10s, reset-timeout = 5s }
            }
            akka.persistence.snapshot-store.sql {
              class = "Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql"
              connection-string = {{c}}
              provider-name = {{p}}
              auto-initialize = true
            }
            """;
    }

    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>Jobs by id over <see cref="Shards"/> shards: enough to spread over a handful of gateways, few enough
    /// that the coordinator's state stays small.</summary>
    sealed class JobMessageExtractor(int shards) : HashCodeMessageExtractor(shards)
    {
        public override string EntityId(object message) => message is IJobMessage m ? m.JobId : null!;
    }
}
