using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using MoeCluster.TestSupport;

namespace MoeCluster.Node.Tests;

/// <summary>One `moecluster` node as a child process (`dotnet moecluster.dll serve …`), built by nobody here: the
/// already-built program next to the test assembly (this project references the Node project) or under
/// src/MoeCluster.Node/bin. Its stdout and stderr go to a log file for diagnostics. <see cref="Kill"/> is kill -9,
/// <see cref="TerminateAsync"/> is SIGTERM (coordinated shutdown). A node may run inside a network namespace
/// (`ip netns exec`, which execs dotnet: the process is the node itself); its HTTP address is then
/// <c>http://{namespace}.netns:{port}</c>, which <see cref="Support.NetworkNamespaces.HttpHandler"/> connects to.</summary>
public sealed class NodeProcess : IDisposable
{
    readonly Process process;
    readonly StreamWriter log;

    public string Name { get; }
    public int Port { get; }
    public int HttpPort { get; }
    public string LogPath { get; }
    public string Host { get; }
    public string Address => $"akka.tcp://moecluster@{Host}:{Port}";
    public Uri BaseAddress { get; }
    public int Pid => process.Id;
    public bool HasExited => process.HasExited;

    NodeProcess(string name, Process process, StreamWriter log, string logPath, int port, int httpPort, string host, string? netns)
    {
        Name = name;
        Host = host;
        BaseAddress = new($"http://{(netns is null ? "127.0.0.1" : netns + Support.NetworkNamespaces.HostSuffix)}:{httpPort}/");
        this.process = process;
        this.log = log;
        LogPath = logPath;
        Port = port;
        HttpPort = httpPort;
    }

    /// <summary>The built `moecluster.dll`: beside this assembly, else under src/MoeCluster.Node/bin/{Debug,Release}.</summary>
    public static string Program()
    {
        var here = Path.Combine(AppContext.BaseDirectory, "moecluster.dll");
        if (File.Exists(here)) return here;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            foreach (var configuration in new[] { "Debug", "Release" })
            {
                var candidate = Path.Combine(dir.FullName, "src", "MoeCluster.Node", "bin", configuration, "net10.0", "moecluster.dll");
                if (File.Exists(candidate)) return candidate;
            }
        throw new FileNotFoundException($"moecluster.dll is neither in {AppContext.BaseDirectory} nor under src/MoeCluster.Node/bin; build src/MoeCluster.Node first");
    }

    /// <summary>Starts `moecluster <paramref name="arguments"/>` with output to <paramref name="logPath"/> (appended, so a
    /// restarted node keeps one log), inside network namespace <paramref name="netns"/> if given.</summary>
    public static NodeProcess Start(string name, IEnumerable<string> arguments, string logPath, int port = 0, int httpPort = 0,
        string host = "127.0.0.1", string? netns = null)
    {
        var info = new ProcessStartInfo(netns is null ? "dotnet" : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (netns is not null) foreach (var a in new[] { "netns", "exec", netns, "dotnet" }) info.ArgumentList.Add(a);
        info.ArgumentList.Add(Program());
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // Settings come from the arguments only, never from the environment the tests happen to run in.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MOECLUSTER_", StringComparison.Ordinal)).ToList()) info.Environment.Remove(key);
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        log.WriteLine($"==== {DateTime.UtcNow:HH:mm:ss.fff} {info.FileName} {string.Join(' ', info.ArgumentList)}");
        var process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
        var node = new NodeProcess(name, process, log, logPath, port, httpPort, host, netns);
        process.OutputDataReceived += (_, e) => node.Write(e.Data);
        process.ErrorDataReceived += (_, e) => node.Write(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    /// <summary>Runs `moecluster <paramref name="arguments"/>` to its end; returns its exit code, stdout and stderr.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IEnumerable<string> arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Program());
        foreach (var a in arguments) info.ArgumentList.Add(a);
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MOECLUSTER_", StringComparison.Ordinal)).ToList()) info.Environment.Remove(key);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"moecluster {string.Join(' ', arguments)} did not finish within {timeout.TotalSeconds:0}s; stderr:\n{await stderr}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>`moecluster serve` with remoting on <paramref name="host"/> (loopback unless in a namespace) and HTTP on
    /// the loopback interface of its namespace.</summary>
    public static NodeProcess Serve(string name, string model, string roles, int port, int httpPort, string seed, string dataDirectory,
        string logPath, IEnumerable<string> extra, string host = "127.0.0.1", string? netns = null) =>
        Start(name,
        [
            "serve", "--model", model, "--roles", roles, "--hostname", host, "--port", port.ToString(),
            "--http-host", "127.0.0.1", "--http-port", httpPort.ToString(), "--seed-nodes", seed, "--data-dir", dataDirectory, .. extra,
        ], logPath, port, httpPort, host, netns);

    bool closed;

    void Write(string? line)
    {
        if (line is null) return;
        lock (log) if (!closed) log.WriteLine(line);
    }

    /// <summary>kill -9: no shutdown hooks, no leave; the cluster finds out through its failure detector.</summary>
    public void Kill()
    {
        if (process.HasExited) return;
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>SIGTERM, then waits for the process to exit (coordinated shutdown: hand-off, leave, exit).</summary>
    public async Task TerminateAsync(TimeSpan timeout)
    {
        if (process.HasExited) return;
        using (var kill = Process.Start("kill", $"-TERM {process.Id}")) await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0}s of SIGTERM; see {LogPath}"); }
    }

    /// <summary>Waits until GET <paramref name="path"/> answers 200 (the process must stay alive meanwhile).</summary>
    public async Task WaitForAsync(HttpClient http, string path, TimeSpan timeout)
    {
        await Poll.UntilAsync(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"{Name} exited with {process.ExitCode} while waiting for {path}:\n{Tail()}");
            try
            {
                using var r = await http.GetAsync(new Uri(BaseAddress, path));
                return r.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return false; }
        }, timeout, $"{Name}: GET {path} answering 200");
    }

    public async Task<JsonNode> GetJsonAsync(HttpClient http, string path) =>
        JsonNode.Parse(await http.GetStringAsync(new Uri(BaseAddress, path)))!;

    public async Task<HttpResponseMessage> PostJsonAsync(HttpClient http, string path, JsonNode body, CancellationToken ct = default) =>
        await http.PostAsJsonAsync(new Uri(BaseAddress, path), body, ct);

    /// <summary>Lines of the log from <paramref name="fromLine"/> on that a clean run must not have: ERROR lines and
    /// stack-trace frames.</summary>
    public IReadOnlyList<string> ErrorLines(int fromLine = 0) => LogLines.Errors(ReadLog().Skip(fromLine));

    /// <summary>How many lines the log has now (to check only what follows).</summary>
    public int LogLength => ReadLog().Length;

    string[] ReadLog()
    {
        using var s = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(s).ReadToEnd().Split('\n');
    }

    /// <summary>The last lines of the log, for failure messages.</summary>
    public string Tail(int lines = 30)
    {
        try
        {
            using var s = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var all = new StreamReader(s).ReadToEnd().Split('\n');
            return $"--- {Name} ({LogPath}) ---\n" + string.Join('\n', all.TakeLast(lines).Select(l => l.Length > 400 ? l[..400] : l));
        }
        catch (IOException e) { return $"--- {Name}: log unreadable ({e.Message})"; }
    }

    public void Dispose()
    {
        try { Kill(); }
        catch (InvalidOperationException) { /* never started or already reaped */ }
        process.Dispose();
        lock (log) { closed = true; log.Dispose(); }
    }
}

/// <summary>What a clean run's output must not contain.</summary>
public static partial class LogLines
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^\s+at \S+")]
    private static partial System.Text.RegularExpressions.Regex StackFrame();

    public static IReadOnlyList<string> Errors(IEnumerable<string> lines) =>
        lines.Where(l => l.Contains("[ERROR]", StringComparison.Ordinal) || l.Contains("fail:", StringComparison.Ordinal) || StackFrame().IsMatch(l)).ToList();
}
