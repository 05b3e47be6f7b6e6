using System.Text.Json;
using MoeCluster.Node.Http;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>A job outlives the host that accepted it: stop the host (and its ActorSystem) mid-job, start a new one on
/// the same SQLite file, and the job finishes with exactly one result per line.</summary>
[Collection(ServingCollection.Name)]
public sealed class JobDurabilitySpec(ServingFixture f)
{
    [Fact]
    public async Task A_job_interrupted_by_a_host_restart_resumes_and_every_line_has_exactly_one_result()
    {
        const int total = 24;
        var options = new ServingOptions { DataDirectory = ServingHost.TempDirectory(), JobConcurrency = 2 };
        var lines = Enumerable.Range(0, total)
            .Select(i => JsonSerializer.Serialize(new { model = f.Model.Name, prompt = $"Line {i} of a long job", max_tokens = 32, temperature = 0, ignore_eos = true }))
            .ToList();
        string id;
        await using (var first = await ServingHost.StartAsync(f.Model, options))
        {
            id = (string)(await first.Http.SubmitAsync(lines))["id"]!;
            // Two lines run at a time, so when the first finishes eleven rounds are still to go: the stop lands mid-job.
            await first.Http.WaitForAsync(id, s => (int)s["completed"]! >= 1, TimeSpan.FromSeconds(60), "a line done");
        }
        long persistedBeforeRestart = JobJournal.EventCount(options.DataDirectory, id) - 1;
        Assert.InRange(persistedBeforeRestart, 1, total - 1);

        await using var second = await ServingHost.StartAsync(f.Model, options);
        var status = await second.Http.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(120));
        Assert.Equal("completed", (string)status["status"]!);
        Assert.Equal(total, (int)status["completed"]!);
        Assert.Equal(0, (int)status["failed"]!);

        var results = await second.Http.ResultsAsync(id);
        JobsClient.AssertOneResultPerLineInOrder(results, total);
        // One JobSubmitted and exactly one LineCompleted per line: nothing recomputed into a second result.
        Assert.Equal(1 + total, JobJournal.EventCount(options.DataDirectory, id));
        // Lines finished before and after the restart are the greedy answers.
        foreach (int line in new[] { 0, total - 1 })
        {
            var (_, direct) = await second.Http.PostJsonAsync("v1/completions", JsonDocument.Parse(lines[line]).RootElement);
            Assert.Equal((string)direct!["choices"]![0]!["text"]!, (string)results[line]["response"]!["choices"]![0]!["text"]!);
        }
    }
}
