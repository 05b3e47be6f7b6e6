using Microsoft.Data.Sqlite;

namespace MoeCluster.Node.Tests.Support;

/// <summary>Reads the SQLite job journal directly, to prove what was persisted (not just what the API says).</summary>
public static class JobJournal
{
    /// <summary>Events stored for a job: 1 JobSubmitted + one LineCompleted per finished line (+1 if cancelled).</summary>
    /// <remarks>Opened read-write on purpose: after a kill -9 mid-commit the database has a hot rollback journal, and
    /// SQLite must roll it back before anyone may read; a read-only connection cannot, and fails with "attempt to write
    /// a readonly database". Rolling back is what the restarted server does first anyway.</remarks>
    public static long EventCount(string dataDirectory, string jobId)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "jobs.db")};Mode=ReadWrite;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = $id";
        command.Parameters.AddWithValue("$id", "job-" + jobId);
        return (long)command.ExecuteScalar()!;
    }
}
