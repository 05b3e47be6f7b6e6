using System.Diagnostics;
using System.Reflection;
using MoeCluster.Node.Http;
using MoeCluster.Runtime.Metrics;
using Prometheus;

namespace MoeCluster.Node.Tests.Support;

public static class RepoFiles
{
    /// <summary>The repository root (the folder holding MoeCluster.sln), found upwards from the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "MoeCluster.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no MoeCluster.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>Every series MoeCluster itself defines: MoeMetrics (runtime) and HttpMetrics (serving).</summary>
    public static IReadOnlyList<string> OwnSeries { get; } = typeof(MoeMetrics).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Concat(typeof(HttpMetrics).GetFields(BindingFlags.Public | BindingFlags.Static))
        .Concat(typeof(MoeCluster.Node.Jobs.JobStoreFaults).GetFields(BindingFlags.Public | BindingFlags.Static))
        .Where(f => typeof(Collector).IsAssignableFrom(f.FieldType))
        .Select(f => ((Collector)f.GetValue(null)!).Name)
        .ToList();

    /// <summary>The path of a tool from Debian's prometheus package; fails with the fix when it is missing.</summary>
    public static string Tool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var candidate = System.IO.Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException($"'{name}' is not installed: run deploy/install-test-deps.sh (Debian package 'prometheus').");
    }

    public static (int ExitCode, string Output) Run(string file, string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 60 s"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
