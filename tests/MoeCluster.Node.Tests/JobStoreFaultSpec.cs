using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using MoeCluster.Node.Http;
using MoeCluster.Node.Jobs;
using MoeCluster.Node.Tests.Support;
using MoeCluster.TestSupport;

namespace MoeCluster.Node.Tests;

/// <summary>The job store under real faults, on the real serving stack (Kestrel, Akka.Persistence, SQLite): the disk
/// under the journal filled while a job runs (a size-limited tmpfs), the journal locked by another connection, and a
/// corrupt journal file. Each is a clear 503/507 on the job API and /readyz false naming the problem, while the node
/// keeps serving completions; when the store comes back the node is ready again without a restart and a job finishes
/// with exactly one result per line, checked against the journal's own events.</summary>
[Collection(ServingCollection.Name)]
public sealed class JobStoreFaultSpec(ServingFixture f, Xunit.Abstractions.ITestOutputHelper output)
{
    static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    List<string> Lines(int total, int maxTokens = 32) => Enumerable.Range(0, total)
        .Select(i => JsonSerializer.Serialize(new { model = f.Model.Name, prompt = $"Line {i} of a job", max_tokens = maxTokens, temperature = 0, ignore_eos = true }))
        .ToList();

    [Fact]
    public async Task A_disk_filled_mid_job_stops_the_job_with_507s_and_the_job_finishes_each_line_once_when_space_returns()
    {
        const int total = 40;
        using var disk = new SmallFilesystem(8 << 20);
        var options = new ServingOptions { DataDirectory = disk.Path, JobConcurrency = 2 };
        await using var host = await ServingHost.StartAsync(f.Model, options);
        await WaitReadyAsync(host.Http, ready: true);

        // An upload bigger than the room left (but above the reserve, so the gate lets it in) fails with 507 and
        // leaves no partial file behind.
        disk.Fill(leave: 2 * JobStoreHealth.MinFreeBytes);
        var (uploadStatus, uploadError) = await PostJsonlAsync(host.Http, new string('x', 4 << 20));
        Assert.True(uploadStatus == 507, $"upload to a full disk: {uploadStatus} {uploadError}");
        Assert.Contains("disk full", (string)uploadError!["error"]!["message"]!);
        Assert.Empty(Directory.GetFiles(Path.Combine(disk.Path, "uploads")));
        output.WriteLine($"upload of 4 MiB with {disk.FreeBytes} bytes free: {uploadStatus} {uploadError!["error"]!["message"]}");
        disk.Free();
        await WaitReadyAsync(host.Http, ready: true);

        var id = (string)(await host.Http.SubmitAsync(Lines(total)))["id"]!;
        await host.Http.WaitForAsync(id, s => (int)s["completed"]! >= 1, Deadline, "a line done");
        var writesFailed = JobStoreFaults.Failures.WithLabels("disk_full", "write");
        double failedBefore = writesFailed.Value;
        disk.Fill();
        long persistedAtFull = JobJournal.EventCount(disk.Path, id) - 1;
        Assert.InRange(persistedAtFull, 1, total - 1);

        // The lines in flight finish, their writes fail: the job stops, and everything job-related says why.
        await Poll.UntilAsync(() => writesFailed.Value > failedBefore, Deadline, "a journal write failing on the full disk");
        var readiness = await WaitReadyAsync(host.Http, ready: false);
        Assert.Contains("job store unusable: disk full", (string)readiness["detail"]!);
        output.WriteLine($"disk filled after {persistedAtFull} of {total} lines; /readyz: {readiness["detail"]}");
        output.WriteLine($"GET /v1/jobs/{{id}}: {await AssertUnusableAsync(host.Http, $"v1/jobs/{id}", 507, "disk full")}");
        await AssertUnusableAsync(host.Http, "v1/batches", 507, "disk full");
        var (completionStatus, _) = await host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = "still serving", max_tokens = 4 });
        Assert.Equal(200, completionStatus);

        var clock = Stopwatch.StartNew();
        disk.Free();
        await WaitReadyAsync(host.Http, ready: true);
        output.WriteLine($"space freed: ready again after {clock.Elapsed.TotalSeconds:0.0} s");
        var status = await host.Http.WaitUntilEndedAsync(id, Deadline);
        output.WriteLine($"job completed {clock.Elapsed.TotalSeconds:0.0} s after space was freed; journal events {JobJournal.EventCount(disk.Path, id)} = 1 + {total}");
        Assert.Equal("completed", (string)status["status"]!);
        Assert.Equal(total, (int)status["completed"]!);
        JobsClient.AssertOneResultPerLineInOrder(await host.Http.ResultsAsync(id), total);
        // One JobSubmitted and one LineCompleted per line: no line answered twice across the failure and the resume.
        Assert.Equal(1 + total, JobJournal.EventCount(disk.Path, id));
    }

    [Fact]
    public async Task A_journal_locked_by_another_connection_is_a_503_naming_the_file_until_the_lock_is_released()
    {
        var options = new ServingOptions { DataDirectory = ServingHost.TempDirectory(), JobConcurrency = 2 };
        await using var host = await ServingHost.StartAsync(f.Model, options);
        await WaitReadyAsync(host.Http, ready: true);

        using (var holder = new SqliteConnection($"Data Source={options.SqliteJournalPath};Pooling=False"))
        {
            holder.Open();
            using var exclusive = holder.CreateCommand();
            exclusive.CommandText = "BEGIN EXCLUSIVE";
            exclusive.ExecuteNonQuery();

            var readiness = await WaitReadyAsync(host.Http, ready: false);
            output.WriteLine($"locked: /readyz: {readiness["detail"]}");
            Assert.Contains("locked by another connection", (string)readiness["detail"]!);
            Assert.Contains(options.SqliteJournalPath, (string)readiness["detail"]!);
            var clock = Stopwatch.StartNew();
            var lockedWrites = JobStoreFaults.Failures.WithLabels("locked", "write");
            double writesBefore = lockedWrites.Value;
            var message = await AssertUnusableAsync(host.Http, "v1/jobs", 503, "locked by another connection", post: true);
            Assert.Contains("jobs.db", message);
            // Refused by the store gate's probe, not by a journal write that waited out its 8 s lock timeout (which a
            // wall-clock bound told apart only on a quiet machine: a loaded CI run took 8.5 s over a 5 s bound).
            Assert.Equal(writesBefore, lockedWrites.Value);
            output.WriteLine($"locked: POST /v1/jobs in {clock.Elapsed.TotalSeconds:0.0} s: {message}");
        }

        await WaitReadyAsync(host.Http, ready: true);
        await AssertJobCompletesOnceAsync(host.Http, options.DataDirectory);
    }

    [Fact]
    public async Task A_corrupt_journal_file_is_reported_at_start_and_the_node_recovers_once_the_file_is_replaced()
    {
        var options = new ServingOptions { DataDirectory = ServingHost.TempDirectory(), JobConcurrency = 2 };
        var garbage = new byte[16 * 1024];
        new Random(11).NextBytes(garbage);
        File.WriteAllBytes(options.SqliteJournalPath, garbage);
        await using var host = await ServingHost.StartAsync(f.Model, options);

        var readiness = await WaitReadyAsync(host.Http, ready: false);
        output.WriteLine($"corrupt: /readyz: {readiness["detail"]}");
        Assert.Contains($"corrupt: {options.SqliteJournalPath} is not a readable SQLite database", (string)readiness["detail"]!);
        await AssertUnusableAsync(host.Http, "v1/jobs", 503, options.SqliteJournalPath, post: true);

        // The operator moves the damaged file aside (restoring a backup works the same way).
        File.Move(options.SqliteJournalPath, options.SqliteJournalPath + ".corrupt");
        var clock = Stopwatch.StartNew();
        await WaitReadyAsync(host.Http, ready: true);
        output.WriteLine($"corrupt file moved aside: ready again after {clock.Elapsed.TotalSeconds:0.0} s");
        await AssertJobCompletesOnceAsync(host.Http, options.DataDirectory);
    }

    [Fact]
    public async Task A_stopped_PostgreSQL_journal_stops_the_job_with_503s_and_the_job_finishes_each_line_once_when_it_is_back()
    {
        const int total = 40;
        using var postgres = new PrivatePostgres();   // its own server: the shared one other tests use is never stopped
        var options = new ServingOptions { DataDirectory = ServingHost.TempDirectory(), JobConcurrency = 2, JournalConnectionString = postgres.ConnectionString };
        await using var host = await ServingHost.StartAsync(f.Model, options);
        await WaitReadyAsync(host.Http, ready: true);
        long Events(string id) => postgres.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = 'job-{id}'");

        var id = (string)(await host.Http.SubmitAsync(Lines(total)))["id"]!;
        await host.Http.WaitForAsync(id, s => (int)s["completed"]! >= 1, Deadline, "a line done");
        Assert.InRange(Events(id) - 1, 1, total - 1);
        var writesFailed = JobStoreFaults.Failures.WithLabels("unreachable", "write");
        double failedBefore = writesFailed.Value;
        postgres.Stop();

        await Poll.UntilAsync(() => writesFailed.Value > failedBefore, Deadline, "a journal write failing with PostgreSQL stopped");
        var readiness = await WaitReadyAsync(host.Http, ready: false);
        output.WriteLine($"PostgreSQL stopped: /readyz: {readiness["detail"]}");
        Assert.Contains("job store unusable: PostgreSQL unreachable", (string)readiness["detail"]!);
        output.WriteLine($"GET /v1/jobs/{{id}}: {await AssertUnusableAsync(host.Http, $"v1/jobs/{id}", 503, $"127.0.0.1:{postgres.Port}")}");
        await AssertUnusableAsync(host.Http, "v1/files", 503, "PostgreSQL unreachable");

        var clock = Stopwatch.StartNew();
        postgres.Start();
        await WaitReadyAsync(host.Http, ready: true);
        output.WriteLine($"PostgreSQL started: ready again after {clock.Elapsed.TotalSeconds:0.0} s");
        var status = await host.Http.WaitUntilEndedAsync(id, Deadline);
        Assert.Equal("completed", (string)status["status"]!);
        JobsClient.AssertOneResultPerLineInOrder(await host.Http.ResultsAsync(id), total);
        Assert.Equal(1 + total, Events(id));
        output.WriteLine($"job completed {clock.Elapsed.TotalSeconds:0.0} s after PostgreSQL started; journal events {Events(id)} = 1 + {total}");
    }

    async Task AssertJobCompletesOnceAsync(HttpClient http, string dataDirectory)
    {
        const int total = 6;
        // The directory restarts with a backoff after the store returns: the submission is retried until it is back.
        var submitted = await Poll.UntilAsync(() => PostJsonlAsync(http, string.Join("\n", Lines(total, 8)) + "\n"),
            r => r.Status == 200, Deadline, "a job submission accepted after recovery");
        var id = (string)submitted.Body!["id"]!;
        var status = await http.WaitUntilEndedAsync(id, Deadline);
        output.WriteLine($"after recovery a {total}-line job: {status["status"]}, {JobJournal.EventCount(dataDirectory, id)} journal events");
        Assert.Equal("completed", (string)status["status"]!);
        JobsClient.AssertOneResultPerLineInOrder(await http.ResultsAsync(id), total);
        Assert.Equal(1 + total, JobJournal.EventCount(dataDirectory, id));
    }

    /// <summary>GET (or POST a one-line job to) <paramref name="path"/>: the status, an OpenAI error whose message
    /// names the store problem, and Retry-After. Returns the message.</summary>
    static async Task<string> AssertUnusableAsync(HttpClient http, string path, int status, string expected, bool post = false)
    {
        using var response = post
            ? await http.PostAsync(path, new StringContent("{}\n", Encoding.UTF8, "application/jsonl"))
            : await http.GetAsync(path);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Assert.True((int)response.StatusCode == status, $"{path}: {(int)response.StatusCode} {body}");
        OpenAiErrors.AssertError(body, null);
        var message = (string)body!["error"]!["message"]!;
        Assert.StartsWith("job store unusable: ", message);
        Assert.Contains(expected, message);
        Assert.Equal("job_store_unavailable", (string?)body["error"]!["code"]);
        Assert.Equal("server_error", (string?)body["error"]!["type"]);
        if (status == 503) Assert.True(response.Headers.RetryAfter is not null, "503 without Retry-After");
        return message;
    }

    static async Task<(int Status, JsonNode? Body)> PostJsonlAsync(HttpClient http, string jsonl)
    {
        using var content = new StringContent(jsonl, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        using var response = await http.PostAsync("v1/jobs", content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    static async Task<JsonNode> WaitReadyAsync(HttpClient http, bool ready) =>
        (await Poll.UntilAsync(() => http.GetJsonAsync("readyz"), r => r.Status == (ready ? 200 : 503), Deadline,
            ready ? "/readyz answering 200" : "/readyz answering 503")).Body!;
}
