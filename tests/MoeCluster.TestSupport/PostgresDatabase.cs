using Npgsql;

namespace MoeCluster.TestSupport;

/// <summary>A fresh database on the PostgreSQL server that deploy/install-test-deps.sh installs and starts
/// (127.0.0.1:5432, role moecluster_test), dropped again on dispose. A missing server fails the test, loudly: the
/// shared-journal path must never be skipped into a green run.</summary>
public sealed class PostgresDatabase : IJournalDatabase
{
    const string Server = "Host=127.0.0.1;Port=5432;Username=moecluster_test;Password=moecluster_test;Timeout=5";

    public string Name { get; } = "moecluster_" + Guid.NewGuid().ToString("N")[..12];
    public string ConnectionString => $"{Server};Database={Name}";

    public PostgresDatabase()
    {
        try { Execute($"CREATE DATABASE {Name}"); }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new InvalidOperationException(
                $"no PostgreSQL server answers as moecluster_test on 127.0.0.1:5432 ({e.Message}). Run deploy/install-test-deps.sh (./test.sh does) to install and start it.", e);
        }
    }

    public long Scalar(string sql)
    {
        using var connection = new NpgsqlConnection(ConnectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(command.ExecuteScalar());
    }

    static void Execute(string sql)
    {
        using var connection = new NpgsqlConnection(Server + ";Database=postgres");
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        try { Execute($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)"); }
        catch (NpgsqlException) { /* the server went away; nothing left to drop */ }
    }
}
