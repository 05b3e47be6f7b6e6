using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace MoeCluster.Node.Files;

/// <summary>What /v1/files lists about one stored file.</summary>
public sealed record StoredFile(string Id, string Purpose, string FileName, long Bytes, long CreatedAt, long ExpiresAt);

/// <summary>Uploaded files (batch inputs), in the same database as the job journal so that every gateway sees every
/// file: a SQLite file beside the journal for one node, PostgreSQL for several. Content is stored in chunks of
/// <see cref="ChunkBytes"/> and read back chunk by chunk, so neither an upload nor a download is held whole in memory.
/// Tables are created on first use.</summary>
public sealed class FileStore
{
    public const int ChunkBytes = 1 << 20;

    readonly Func<DbConnection> connect;
    readonly bool postgres;
    readonly SemaphoreSlim schema = new(1, 1);
    bool created;

    FileStore(Func<DbConnection> connect, bool postgres)
    {
        this.connect = connect;
        this.postgres = postgres;
    }

    public static FileStore Sqlite(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        return new FileStore(() => new SqliteConnection($"Data Source={path};Default Timeout=30"), postgres: false);
    }

    public static FileStore Postgres(string connectionString) => new(() => new NpgsqlConnection(connectionString), postgres: true);

    /// <summary>Stores the file at <paramref name="path"/> (already on local disk) under <paramref name="file"/>'s id.</summary>
    public async Task SaveAsync(StoredFile file, string path, CancellationToken cancellation)
    {
        await using var connection = await OpenAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await ExecuteAsync(connection, transaction, "INSERT INTO moecluster_files (id, purpose, filename, bytes, created_at, expires_at) VALUES (@id, @purpose, @filename, @bytes, @created, @expires)",
            cancellation, ("id", file.Id), ("purpose", file.Purpose), ("filename", file.FileName), ("bytes", file.Bytes), ("created", file.CreatedAt), ("expires", file.ExpiresAt));
        await using var input = File.OpenRead(path);
        var buffer = new byte[ChunkBytes];
        for (int seq = 0; ; seq++)
        {
            int n = await input.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellation);
            if (n == 0) break;
            await ExecuteAsync(connection, transaction, "INSERT INTO moecluster_file_chunks (file_id, seq, data) VALUES (@id, @seq, @data)",
                cancellation, ("id", file.Id), ("seq", seq), ("data", buffer.AsSpan(0, n).ToArray()));
            if (n < buffer.Length) break;
        }
        await transaction.CommitAsync(cancellation);
    }

    public async Task<StoredFile?> GetAsync(string id, CancellationToken cancellation)
    {
        await using var connection = await OpenAsync(cancellation);
        await using var command = Command(connection, null, "SELECT id, purpose, filename, bytes, created_at, expires_at FROM moecluster_files WHERE id = @id", ("id", id));
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        if (!await reader.ReadAsync(cancellation)) return null;
        return new StoredFile(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5));
    }

    /// <summary>The content, one chunk at a time, in order.</summary>
    public async IAsyncEnumerable<byte[]> ReadAsync(string id, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        await using var connection = await OpenAsync(cancellation);
        for (int seq = 0; ; seq++)
        {
            await using var command = Command(connection, null, "SELECT data FROM moecluster_file_chunks WHERE file_id = @id AND seq = @seq", ("id", id), ("seq", seq));
            var chunk = await command.ExecuteScalarAsync(cancellation) as byte[];
            if (chunk is null) yield break;
            yield return chunk;
        }
    }

    /// <summary>The whole content (for a job's input, which the journal keeps line by line anyway).</summary>
    public async Task<byte[]> ReadAllAsync(string id, CancellationToken cancellation)
    {
        using var buffer = new MemoryStream();
        await foreach (var chunk in ReadAsync(id, cancellation)) buffer.Write(chunk);
        return buffer.ToArray();
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken cancellation)
    {
        await using var connection = await OpenAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await ExecuteAsync(connection, transaction, "DELETE FROM moecluster_file_chunks WHERE file_id = @id", cancellation, ("id", id));
        int rows = await ExecuteAsync(connection, transaction, "DELETE FROM moecluster_files WHERE id = @id", cancellation, ("id", id));
        await transaction.CommitAsync(cancellation);
        return rows > 0;
    }

    /// <summary>Deletes every file whose retention ended before <paramref name="now"/>; returns how many.</summary>
    public async Task<int> DeleteExpiredAsync(long now, CancellationToken cancellation)
    {
        var expired = new List<string>();
        await using (var connection = await OpenAsync(cancellation))
        await using (var command = Command(connection, null, "SELECT id FROM moecluster_files WHERE expires_at <= @now", ("now", now)))
        await using (var reader = await command.ExecuteReaderAsync(cancellation))
            while (await reader.ReadAsync(cancellation)) expired.Add(reader.GetString(0));
        foreach (var id in expired) await DeleteAsync(id, cancellation);
        return expired.Count;
    }

    async Task<DbConnection> OpenAsync(CancellationToken cancellation)
    {
        var connection = connect();
        await connection.OpenAsync(cancellation);
        if (!created)
        {
            await schema.WaitAsync(cancellation);
            try
            {
                if (!created)
                {
                    string blob = postgres ? "BYTEA" : "BLOB";
                    await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS moecluster_files (id VARCHAR(64) PRIMARY KEY, purpose VARCHAR(32) NOT NULL, filename VARCHAR(512) NOT NULL, bytes BIGINT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)", cancellation);
                    await ExecuteAsync(connection, null, $"CREATE TABLE IF NOT EXISTS moecluster_file_chunks (file_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, data {blob} NOT NULL, PRIMARY KEY (file_id, seq))", cancellation);
                    created = true;
                }
            }
            finally { schema.Release(); }
        }
        return connection;
    }

    static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string name, object value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            var p = command.CreateParameter();
            p.ParameterName = "@" + name;
            p.Value = value;
            command.Parameters.Add(p);
        }
        return command;
    }

    static async Task<int> ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellation, params (string name, object value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellation);
    }
}
