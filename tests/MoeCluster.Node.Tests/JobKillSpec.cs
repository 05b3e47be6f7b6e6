using MoeCluster.TestSupport;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>The durability bar with a real process kill: `moecluster serve` accepts a job, is killed with
/// SIGKILL mid-job, is started again on the same data directory, and finishes the job with exactly one result per
/// line, nothing lost and nothing duplicated.</summary>
[Collection(ServingCollection.Name)]
public sealed class JobKillSpec(ServingFixture f)
{
    [Fact]
    public async Task A_job_survives_kill_9_of_the_serving_process_with_exactly_one_result_per_line()
    {
        // The node runs 8 lines of a job at a time: 25 rounds of 64 tokens, so the kill after the first finished line
        // lands mid-job even when the machine is idle and the tiny model is fast.
        const int total = 200;
        string dataDir = ServingHost.TempDirectory();
        var lines = Enumerable.Range(0, total)
            .Select(i => JsonSerializer.Serialize(new { model = f.Model.Name, prompt = $"Line {i} of a long job", max_tokens = 64, temperature = 0, ignore_eos = true }))
            .ToList();

        string id;
        using (var first = await NodeUnderTest.StartAsync(f.Model.Directory, dataDir))
        {
            id = (string)(await first.Http.SubmitAsync(lines))["id"]!;
            await first.Http.WaitForAsync(id, s => (int)s["completed"]! >= 1, TimeSpan.FromSeconds(90), "a line done");
            first.Kill();
        }
        long persisted = JobJournal.EventCount(dataDir, id) - 1;
        Assert.InRange(persisted, 1, total - 1);

        using var second = await NodeUnderTest.StartAsync(f.Model.Directory, dataDir);
        var status = await second.Http.WaitUntilEndedAsync(id, TimeSpan.FromSeconds(180));
        Assert.Equal("completed", (string)status["status"]!);
        var results = await second.Http.ResultsAsync(id);
        JobsClient.AssertOneResultPerLineInOrder(results, total);
        Assert.All(results, r => Assert.NotNull(r["response"]));
        Assert.Equal(1 + total, JobJournal.EventCount(dataDir, id));
    }

    /// <summary>`dotnet moecluster.dll serve --engine local` as a child process on a free loopback port.</summary>
    sealed class NodeUnderTest : IDisposable
    {
        readonly Process process;
        readonly StringBuilder output = new();
        public HttpClient Http { get; }

        NodeUnderTest(Process process, int port)
        {
            this.process = process;
            Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
        }

        public static async Task<NodeUnderTest> StartAsync(string modelDirectory, string dataDirectory)
        {
            int port = FreePort();
            var dll = Path.Combine(AppContext.BaseDirectory, "moecluster.dll");
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { dll, "serve", "--engine", "local", "--model", modelDirectory, "--http-host", "127.0.0.1",
                         "--http-port", port.ToString(), "--data-dir", dataDirectory, "--context-length", "128", "--max-batch-size", "8", "--job-batch-share", "1" })
                info.ArgumentList.Add(a);
            var node = new NodeUnderTest(Process.Start(info)!, port);
            node.process.OutputDataReceived += (_, e) => { lock (node.output) node.output.AppendLine(e.Data); };
            node.process.ErrorDataReceived += (_, e) => { lock (node.output) node.output.AppendLine(e.Data); };
            node.process.BeginOutputReadLine();
            node.process.BeginErrorReadLine();
            try
            {
                await Poll.UntilAsync(async () =>
                {
                    if (node.process.HasExited) throw new InvalidOperationException($"moecluster serve exited with {node.process.ExitCode}:\n{node.Output}");
                    try { return (int)(await node.Http.GetAsync("readyz")).StatusCode; }
                    catch (HttpRequestException) { return 0; }
                }, s => s == 200, TimeSpan.FromSeconds(90), "moecluster serve to become ready");
            }
            catch { node.Dispose(); throw; }
            return node;
        }

        public string Output { get { lock (output) return output.ToString(); } }

        /// <summary>SIGKILL: no shutdown hooks, no flushing, exactly like kill -9.</summary>
        public void Kill()
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        public void Dispose()
        {
            Http.Dispose();
            if (!process.HasExited) Kill();
            process.Dispose();
        }
    }
}
