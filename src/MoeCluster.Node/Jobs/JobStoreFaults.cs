using System.Data.Common;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using MoeCluster.Node.Http;
using Npgsql;
using Prometheus;

namespace MoeCluster.Node.Jobs;

/// <summary>Names what is wrong with the job store from the exception a write or read threw, in words an operator acts
/// on (disk full, locked by another connection, corrupt, unreachable), with the file or server it concerns.</summary>
public static class JobStoreFaults
{
    const int Enospc = 28;

    /// <summary>The exception is the store failing (database, disk), not a bad request.</summary>
    public static bool IsStoreFault(Exception e) => Root(e) is DbException or SocketException || IsDiskFull(e);

    /// <summary>The database, socket or I/O error inside whatever the journal or a data library wrapped it in
    /// (linq2db wraps a failed rollback, Akka an aggregate), else the innermost exception.</summary>
    public static Exception Root(Exception e)
    {
        var pending = new Stack<Exception>([e]);
        while (pending.TryPop(out var x))
        {
            if (x is DbException or SocketException or IOException or TimeoutException) return x;
            if (x is AggregateException a) foreach (var inner in a.InnerExceptions.Reverse()) pending.Push(inner);
            else if (x.InnerException is { } inner) pending.Push(inner);
        }
        return e.GetBaseException();
    }

    public static bool IsDiskFull(Exception e) => Root(e) switch
    {
        SqliteException s => s.SqliteErrorCode == 13,
        PostgresException p => p.SqlState == PostgresErrorCodes.DiskFull,
        IOException io => io.HResult == Enospc || (io.HResult & 0xFFFF) == 0x70 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    /// <summary>The kind of failure, as the <c>kind</c> label of <see cref="Failures"/>.</summary>
    public static string Kind(Exception e) => IsDiskFull(e) ? "disk_full" : Root(e) switch
    {
        SqliteException { SqliteErrorCode: 5 or 6 } => "locked",
        SqliteException { SqliteErrorCode: 11 or 26 } => "corrupt",
        // 08: connection exceptions; 57P01-03: the server is shutting down, crashed, or not accepting connections yet.
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("57P", StringComparison.Ordinal) ? "unreachable" : "other",
        NpgsqlException or SocketException or TimeoutException => "unreachable",
        _ => "other",
    };

    public static readonly Counter Failures = Metrics.CreateCounter("moecluster_job_store_failures_total",
        "Failures of the job store (journal and uploaded files), by kind (disk_full, locked, corrupt, unreachable, other) and operation (write: a journal write; recovery: a journal read; request: a file-store call of the API; probe: the health probe, about once a second while it fails).",
        "kind", "operation");

    /// <summary>"disk full (…)", "locked by another connection (…)", …: what the store's failure means.</summary>
    public static string Describe(Exception e, string where)
    {
        var b = Root(e);
        string message = b.Message.TrimEnd('.'), detail = $"{where}: {message}";
        return Kind(b) switch
        {
            "disk_full" => $"disk full ({detail})",
            "locked" => $"locked by another connection ({detail})",
            "corrupt" => $"corrupt: {where} is not a readable SQLite database ({message})",
            "unreachable" => $"PostgreSQL unreachable ({detail})",
            _ => b switch
            {
                SqliteException { SqliteErrorCode: 8 } => $"read-only ({detail})",
                SqliteException { SqliteErrorCode: 14 } => $"cannot be opened ({detail})",
                SqliteException { SqliteErrorCode: 10 } => $"I/O error ({detail})",
                PostgresException => $"PostgreSQL refused the write ({detail})",
                _ => $"failing ({detail})",
            },
        };
    }

    public const string Code = "job_store_unavailable";

    /// <summary>The HTTP answer while the store is unusable: 507 when the disk is full, else 503 (retry later).</summary>
    public static ApiException Unusable(string detail, bool diskFull = false) =>
        new(diskFull ? StatusCodes.Status507InsufficientStorage : StatusCodes.Status503ServiceUnavailable,
            $"job store unusable: {detail}; retry when it recovers", null, Code, "server_error");

    public static ApiException Unusable(JobStoreState state) => Unusable(state.Detail, state.DiskFull);

    /// <summary>The same answer as a reply from a job entity or the directory that could not write or read the store.</summary>
    public static JobRejected Rejected(string jobId, JobStoreState state, string? param = null)
    {
        var answer = Unusable(state);
        return new JobRejected(jobId, answer.Status, answer.Message, param, Code);
    }
}
