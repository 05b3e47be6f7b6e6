namespace MoeCluster.TestSupport;

/// <summary>The repository's committed test data (tests/data), found by walking up from the test binaries.</summary>
public static class TestData
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Directory(string name) => Path.Combine(RepositoryRoot, "tests", "data", name);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MoeCluster.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"No MoeCluster.sln in {AppContext.BaseDirectory} or any parent: run the tests from inside the repository.");
    }
}
