using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace MoeCluster.Node.Jobs;

/// <summary>Whether the job store (journal and uploaded files) can be written now, and if not, why.</summary>
public sealed record JobStoreState(bool Usable, string Detail, bool DiskFull, DateTimeOffset At);

/// <summary>The job store's health, as /readyz, the job API and the job directory see it. A probe writes one row in
/// every database the jobs use (so a full disk, a lock held by another connection, a corrupt file or a stopped
/// PostgreSQL shows at once, with short timeouts instead of the journal's long ones) and, for SQLite, checks the
/// filesystem keeps at least <see cref="MinFreeBytes"/> free. A result is reused for <see cref="Fresh"/>; a failure a
/// journal write or file-store call reports counts until the next probe. Nothing here restarts anything: the probe
/// only tells whether to try.</summary>
public sealed class JobStoreHealth
{
    /// <summary>Below this much free space the SQLite store counts as full before SQLite itself fails a write.</summary>
    public const long MinFreeBytes = 1 << 20;
    static readonly TimeSpan Fresh = TimeSpan.FromSeconds(1);

    readonly IReadOnlyList<(string Name, Func<DbConnection> Connect)> stores;
    readonly string? sqliteDirectory;
    readonly SemaphoreSlim probing = new(1, 1);
    volatile JobStoreState current = new(true, "not probed yet", false, DateTimeOffset.MinValue);

    JobStoreHealth(IReadOnlyList<(string, Func<DbConnection>)> stores, string? sqliteDirectory)
    {
        this.stores = stores;
        this.sqliteDirectory = sqliteDirectory;
    }

    /// <summary>The SQLite files (journal, uploaded files): unpooled connections, so a file replaced after corruption
    /// is opened afresh, and a 1 s lock wait.</summary>
    public static JobStoreHealth Sqlite(params string[] paths) =>
        new(paths.Select(p => (p, (Func<DbConnection>)(() => new SqliteConnection($"Data Source={p};Default Timeout=1;Pooling=False")))).ToList(),
            Path.GetDirectoryName(Path.GetFullPath(paths[0])));

    public static JobStoreHealth Postgres(string connectionString)
    {
        var probe = new NpgsqlConnectionStringBuilder(connectionString) { Timeout = 2, CommandTimeout = 2, Pooling = false }.ConnectionString;
        var server = new NpgsqlConnectionStringBuilder(connectionString);
        return new([($"PostgreSQL {server.Host}:{server.Port}/{server.Database}", () => new NpgsqlConnection(probe))], null);
    }

    /// <summary>Where the journal lives (its SQLite file, or the PostgreSQL server and database), for messages.</summary>
    public string Journal => stores[0].Name;

    /// <summary>The last known state, without probing.</summary>
    public JobStoreState Current => current;

    /// <summary>The state, probed again when the last result is older than <see cref="Fresh"/>.</summary>
    public async Task<JobStoreState> CheckAsync(CancellationToken cancellation)
    {
        if (DateTimeOffset.UtcNow - current.At < Fresh) return current;
        await probing.WaitAsync(cancellation);
        try
        {
            if (DateTimeOffset.UtcNow - current.At < Fresh) return current;
            var state = await ProbeAsync(cancellation);
            // A replaced file must not be read through connections pooled while it was broken: pooled connections
            // keep the old file open (a corrupt jobs.db moved aside would be read forever). Cleared on every change
            // of state, so also once the replacement is in place; connections in use are discarded when returned.
            if (state.Usable != current.Usable || !state.Usable) SqliteConnection.ClearAllPools();
            current = state;
            return state;
        }
        finally { probing.Release(); }
    }

    /// <summary>A journal write or a file-store call failed: the store counts as unusable until the next probe.</summary>
    public void ReportFailure(Exception e, string where, string operation)
    {
        JobStoreFaults.Failures.WithLabels(JobStoreFaults.Kind(e), operation).Inc();
        current = new JobStoreState(false, JobStoreFaults.Describe(e, where), JobStoreFaults.IsDiskFull(e), DateTimeOffset.UtcNow);
    }

    async Task<JobStoreState> ProbeAsync(CancellationToken cancellation)
    {
        var now = DateTimeOffset.UtcNow;
        if (sqliteDirectory is not null && Directory.Exists(sqliteDirectory))
        {
            long free = new DriveInfo(sqliteDirectory).AvailableFreeSpace;
            if (free < MinFreeBytes)
            {
                JobStoreFaults.Failures.WithLabels("disk_full", "probe").Inc();
                return new JobStoreState(false, $"disk full ({free} bytes free on the filesystem holding {sqliteDirectory}, under the {MinFreeBytes} the job store keeps in reserve)", true, now);
            }
        }
        foreach (var (name, connect) in stores)
        {
            try { await WriteProbeAsync(connect, cancellation); }
            // Whatever the probe's write throws, the store is not writable now (a cancelled probe is not an answer).
            catch (Exception e) when (e is not OperationCanceledException)
            {
                JobStoreFaults.Failures.WithLabels(JobStoreFaults.Kind(e), "probe").Inc();
                return new JobStoreState(false, JobStoreFaults.Describe(e, name), JobStoreFaults.IsDiskFull(e), now);
            }
        }
        return new JobStoreState(true, "writable", false, now);
    }

    static async Task WriteProbeAsync(Func<DbConnection> connect, CancellationToken cancellation)
    {
        await using var connection = connect();
        await connection.OpenAsync(cancellation);
        foreach (var sql in new[]
        {
            "CREATE TABLE IF NOT EXISTS moecluster_store_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL)",
            "INSERT INTO moecluster_store_probe (id, at) VALUES (1, @at) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        })
        {
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            if (sql.Contains("@at", StringComparison.Ordinal))
            {
                var at = command.CreateParameter();
                at.ParameterName = "@at";
                at.Value = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                command.Parameters.Add(at);
            }
            await command.ExecuteNonQueryAsync(cancellation);
        }
    }
}
