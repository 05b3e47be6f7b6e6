using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Deploy;

/// <summary>The deployment shape of issue 10 as processes on loopback: one attention + expert process (the seed) and
/// gateway-only processes, all on one PostgreSQL database (journal and file store) of their own: a fresh database on the
/// shared server, or a whole server of the test's own (<see cref="PrivatePostgres"/>) when the test stops it.</summary>
public sealed class SharedJournalCluster : IDisposable
{
    readonly string directory;
    readonly string seed;
    readonly string[] flags;
    readonly (int Port, int Http)[] ports;
    readonly TinyModel tiny;

    public IJournalDatabase Database { get; }
    public string ModelName { get; }
    public NodeProcess Workers { get; }
    public NodeProcess[] Gateways { get; }
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    sealed class TinyModel(MoeTransformer model) : IDisposable
    {
        public string Checkpoint { get; } = TinyCheckpoint.Write(model);
        public void Dispose() => model.Dispose();
    }

    public SharedJournalCluster(int gateways, params string[] extraFlags) : this(gateways, new PostgresDatabase(), extraFlags) { }

    /// <summary>The cluster on <paramref name="database"/>, which it disposes.</summary>
    public SharedJournalCluster(int gateways, IJournalDatabase database, string[] extraFlags)
    {
        Database = database;
        tiny = new TinyModel(TinyModels.Random(Architecture.Mixtral));
        ModelName = Path.GetFileName(tiny.Checkpoint.TrimEnd('/'));
        directory = Path.Combine(Path.GetTempPath(), "moecluster-shared-journal", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        flags =
        [
            "--threads", "1", "--max-batch-size", "8", "--context-length", "64", "--downing-stable-after", "3",
            "--expert-timeout", "2", "--step-timeout", "30", "--journal-connection-string", Database.ConnectionString, .. extraFlags,
        ];
        int sp = FreePorts.Next(), sh = FreePorts.Next();
        seed = $"akka.tcp://moecluster@127.0.0.1:{sp}";
        ports = Enumerable.Range(0, gateways).Select(_ => (FreePorts.Next(), FreePorts.Next())).ToArray();
        Workers = NodeProcess.Serve("workers", tiny.Checkpoint, "attention,expert", sp, sh, seed, Path.Combine(directory, "w"), Path.Combine(directory, "workers.log"), flags);
        Gateways = Enumerable.Range(0, gateways).Select(StartGateway).ToArray();
    }

    NodeProcess StartGateway(int i) => NodeProcess.Serve($"gateway-{i}", tiny.Checkpoint, "gateway", ports[i].Port, ports[i].Http, seed,
        Path.Combine(directory, $"g{i}"), Path.Combine(directory, $"gateway-{i}.log"), flags);

    public async Task WaitUntilReadyAsync()
    {
        foreach (var g in Gateways) await g.WaitForAsync(Http, "readyz", TimeSpan.FromSeconds(120));
    }

    /// <summary>Starts gateway <paramref name="i"/> again on its ports (after it exited) and waits until it is ready.</summary>
    public async Task RestartGatewayAsync(int i)
    {
        Gateways[i].Dispose();
        Gateways[i] = StartGateway(i);
        await Gateways[i].WaitForAsync(Http, "readyz", TimeSpan.FromSeconds(120));
    }

    /// <summary>POSTs a job of <paramref name="total"/> greedy lines (token ids <paramref name="prompt"/>(i), generating
    /// <paramref name="maxTokens"/> each) to <paramref name="gateway"/> and waits until its first line is done; returns
    /// the job's id and its status then.</summary>
    public async Task<(string Id, JsonNode Status)> SubmitJobAsync(NodeProcess gateway, int total, int maxTokens, Func<int, int[]> prompt)
    {
        var job = Enumerable.Range(0, total).Select(i => JsonSerializer.Serialize(new { model = ModelName, prompt = prompt(i), max_tokens = maxTokens, temperature = 0, ignore_eos = true }));
        using var content = new StringContent(string.Join("\n", job) + "\n");
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        using var submitted = await Http.PostAsync(new Uri(gateway.BaseAddress, "v1/jobs"), content);
        var text = await submitted.Content.ReadAsStringAsync();
        Assert.True(submitted.IsSuccessStatusCode, $"submitting a job to {gateway.Name}: {(int)submitted.StatusCode} {text}");
        string id = (string)JsonNode.Parse(text)!["id"]!;
        JsonNode? status = null;
        await Poll.UntilAsync(async () => (int)(status = await gateway.GetJsonAsync(Http, $"v1/jobs/{id}"))["completed"]! >= 1,
            TimeSpan.FromSeconds(120), "a first line done");
        return (id, status!);
    }

    /// <summary>The job's results from <paramref name="gateway"/>: one response per line, in order, and exactly one
    /// persisted event per line (+ JobSubmitted) in the shared journal, so nothing was answered twice.</summary>
    public async Task AssertEveryLineAnsweredOnceAsync(NodeProcess gateway, string id, int total)
    {
        var results = (await Http.GetStringAsync(new Uri(gateway.BaseAddress, $"v1/jobs/{id}/results")))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        JobsClient.AssertOneResultPerLineInOrder(results, total);
        Assert.All(results, r => Assert.NotNull(r["response"]));
        Assert.Equal(1 + total, JournalEvents(id));
    }

    /// <summary>Events in the shared journal for one job: 1 JobSubmitted + one LineCompleted per line.</summary>
    public long JournalEvents(string jobId) => Database.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = 'job-{jobId}'");

    public void WriteLogs(ITestOutputHelper output)
    {
        foreach (var n in Gateways.Append(Workers)) output.WriteLine(n.Tail(60));
    }

    public void Dispose()
    {
        foreach (var g in Gateways) g.Dispose();
        Workers.Dispose();
        Http.Dispose();
        Database.Dispose();
        tiny.Dispose();
    }
}
