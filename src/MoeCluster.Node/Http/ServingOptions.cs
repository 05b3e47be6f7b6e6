namespace MoeCluster.Node.Http;

/// <summary>How the HTTP serving surface behaves: the model name it answers to, API keys, body limits, where batch jobs
/// are kept. <see cref="FromEnvironment"/> fills the keys from MOECLUSTER_API_KEYS / MOECLUSTER_API_KEYS_FILE.</summary>
public sealed record ServingOptions
{
    public const string ApiKeysVariable = "MOECLUSTER_API_KEYS";
    public const string ApiKeysFileVariable = "MOECLUSTER_API_KEYS_FILE";

    /// <summary>The id /v1/models lists and requests must name (usually the model directory's name).</summary>
    public string ModelName { get; init; } = "moecluster";

    /// <summary>Accepted Bearer keys; empty = no authentication. Never logged, never exported as metrics.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>Largest JSON body accepted by the generation endpoints (413 above it).</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Largest JSONL upload accepted by POST /v1/jobs and POST /v1/files (413 above it).</summary>
    public long MaxJobBodyBytes { get; init; } = 64L << 20;

    /// <summary>Uploads streamed to disk at the same time on one node; one more gets 429.</summary>
    public int MaxConcurrentUploads { get; init; } = 4;

    /// <summary>Jobs and uploaded files are deleted this long after they end (files: after upload).</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Share of the gateway's batch slots (<see cref="MaxBatchSize"/>) that job lines may hold at once.</summary>
    public double JobBatchShare { get; init; } = 0.5;

    /// <summary>Sequences the gateway decodes together (the host sets it from the scheduler's options).</summary>
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>Most lines one batch job may hold.</summary>
    public int MaxJobLines { get; init; } = 50_000;

    /// <summary>Lines of one job generated at the same time, so the gateway batches them without one job filling the queue.</summary>
    public int JobConcurrency { get; init; } = 8;

    /// <summary>Directory for durable state (SQLite journal of batch jobs).</summary>
    public string DataDirectory { get; init; } = "data";

    /// <summary>PostgreSQL connection string for the job journal; null = SQLite file <c>&lt;DataDirectory&gt;/jobs.db</c>.</summary>
    public string? JournalConnectionString { get; init; }

    /// <summary>Tokens a request may span (prompt + generated); null = the model's max_position_embeddings. The host sets
    /// it to the scheduler's context length so defaults never exceed what the gateway accepts.</summary>
    public int? ContextLength { get; init; }

    /// <summary>The dtype the model runs in (what /v1/models lists).</summary>
    public string DType { get; init; } = "float32";

    /// <summary>Priority of batch-job lines (vLLM's meaning: lower runs first; interactive requests default to 0), so a
    /// running job yields KV-cache slots to interactive requests. A line's own <c>priority</c> is added to it.</summary>
    public int JobLinePriority { get; init; } = 100;

    /// <summary>max_tokens for chat requests that give none (capped by the room left in the context).</summary>
    public int DefaultChatMaxTokens { get; init; } = 256;

    /// <summary>max_tokens for /v1/completions requests that give none (OpenAI's default is 16).</summary>
    public int DefaultCompletionMaxTokens { get; init; } = 16;

    /// <summary>Seconds a 429 tells the client to wait (Retry-After).</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>The SQLite file used when no PostgreSQL connection string is given.</summary>
    public string SqliteJournalPath => Path.Combine(Path.GetFullPath(DataDirectory), "jobs.db");

    /// <summary>Options with <see cref="ApiKeys"/> read from the environment: MOECLUSTER_API_KEYS (comma separated) and
    /// MOECLUSTER_API_KEYS_FILE (one key per line; blank lines and lines starting with # ignored). Both may be set.</summary>
    public ServingOptions FromEnvironment(Func<string, string?>? getVariable = null)
    {
        getVariable ??= Environment.GetEnvironmentVariable;
        var keys = new List<string>(ApiKeys);
        if (getVariable(ApiKeysVariable) is { Length: > 0 } list)
            keys.AddRange(list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        if (getVariable(ApiKeysFileVariable) is { Length: > 0 } file)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"{ApiKeysFileVariable} names {file}, which does not exist", file);
            keys.AddRange(File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
        }
        return this with { ApiKeys = keys.Distinct().ToArray() };
    }

    /// <summary>The model name to serve for a checkpoint directory: its last path segment.</summary>
    public static string ModelNameFor(string modelDirectory) =>
        Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDirectory)));
}
