using Microsoft.Data.Sqlite;

namespace MoeCluster.Node.Tests.Support;

/// <summary>Reads the SQLite job journal directly, to prove what was persisted (not just what the API says).</summary>
public static class JobJournal
{
    /// <summary>Events stored for a job: 1 JobSubmitted + one LineCompleted per finished line (+1 if cancelled).</summary>
    public static long EventCount(string dataDirectory, string jobId)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "jobs.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = $id";
        command.Parameters.AddWithValue("$id", "job-" + jobId);
        return (long)command.ExecuteScalar()!;
    }
}
