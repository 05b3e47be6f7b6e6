using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>Akka.Hosting setup for durable batch jobs: the SQL journal (SQLite file under the data directory, or
/// PostgreSQL when a connection string is given) and the <see cref="JobManagerActor"/>.</summary>
public static class JobsHosting
{
    /// <summary>Adds the job journal's HOCON and starts the job directory, registered in the ActorRegistry as
    /// <see cref="JobManagerActor"/>. Needs <see cref="IJobLineRunner"/> in DI (AddMoeClusterServing registers it).</summary>
    public static AkkaConfigurationBuilder AddMoeClusterJobs(this AkkaConfigurationBuilder builder, ServingOptions options)
    {
        builder.AddHocon(JournalHocon(options), HoconAddMode.Prepend);
        builder.WithActors((system, registry, resolver) =>
        {
            var runner = resolver.GetService<IJobLineRunner>();
            var manager = system.ActorOf(JobManagerActor.Props(runner, options.JobConcurrency), "jobs");
            registry.Register<JobManagerActor>(manager);
        });
        return builder;
    }

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
            // Default Timeout: how long a write waits on SQLite's file lock before failing.
            connection = $"Data Source={options.SqliteJournalPath};Default Timeout=30";
            provider = "SQLite.MS";
        }
        string c = Quote(connection), p = Quote(provider);
        return $$"""
            akka.persistence.journal.sql {
              class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
              connection-string = {{c}}
              provider-name = {{p}}
              auto-initialize = true
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
}
