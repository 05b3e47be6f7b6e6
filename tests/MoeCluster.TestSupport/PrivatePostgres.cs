using System.Diagnostics;
using Npgsql;

namespace MoeCluster.TestSupport;

/// <summary>A PostgreSQL server of the test's own (initdb in a temporary directory, run as the postgres user on a free
/// loopback port), so a test can stop and start it without touching the shared server other tests use. Needs the
/// PostgreSQL binaries deploy/install-test-deps.sh installs and root (to act as postgres); a machine without them fails
/// the test, saying so.</summary>
public sealed class PrivatePostgres : IJournalDatabase
{
    readonly string root;
    readonly string bin;

    public int Port { get; } = FreePorts.Next();
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=5";

    public PrivatePostgres()
    {
        bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "pg_ctl"))).OrderBy(d => d).LastOrDefault() ?? ""
            : "";
        if (bin.Length == 0) throw new InvalidOperationException("no PostgreSQL binaries under /usr/lib/postgresql/*/bin; run deploy/install-test-deps.sh");
        root = Path.Combine(Path.GetTempPath(), "moecluster-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        AsPostgres($"chown postgres {root}", asRoot: true);
        AsPostgres($"{bin}/initdb -D {root}/data -A trust -U postgres --no-sync -E UTF8");
        Start();
    }

    /// <summary>Starts the server and waits until it accepts connections.</summary>
    public void Start() =>
        AsPostgres($"{bin}/pg_ctl -D {root}/data -l {root}/log -w -o '-p {Port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off' start");

    /// <summary>Stops it (fast: open connections are closed at once, as when the server or its host goes down).</summary>
    public void Stop() => AsPostgres($"{bin}/pg_ctl -D {root}/data -m fast -w stop");

    public long Scalar(string sql)
    {
        // Unpooled: a pooled connection would outlive a Stop and fail its next command.
        using var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false");
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(command.ExecuteScalar());
    }

    static void AsPostgres(string command, bool asRoot = false)
    {
        var info = new ProcessStartInfo(asRoot ? "sh" : "su") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in asRoot ? ["-c", command] : new[] { "postgres", "-c", command }) info.ArgumentList.Add(a);
        using var p = Process.Start(info) ?? throw new InvalidOperationException($"could not run {command}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"`{command}` exited {p.ExitCode}: {stdout.Result}{stderr}");
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        try { AsPostgres($"{bin}/pg_ctl -D {root}/data -m immediate -w stop"); }
        catch (InvalidOperationException) { /* already stopped */ }
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }
}
