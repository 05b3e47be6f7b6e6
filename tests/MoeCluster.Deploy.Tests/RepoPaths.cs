namespace MoeCluster.Deploy.Tests;

/// <summary>Files of the repository under test, found by walking up from the test binaries to MoeCluster.sln.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string ChartDirectory => Path.Combine(Root, "helm", "moecluster");
    public static string Dockerfile => Path.Combine(Root, "Dockerfile");

    public static string Chart(string relativePath) => Path.Combine(ChartDirectory, relativePath);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MoeCluster.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException(
            $"No MoeCluster.sln in {AppContext.BaseDirectory} or any parent: run the tests from inside the repository.");
    }
}
