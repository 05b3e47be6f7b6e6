namespace MoeCluster.Model.Tests.Training;

/// <summary>Files committed to the repository (the shipped models), found by walking up from the test binaries.</summary>
public static class RepositoryFiles
{
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "MoeCluster.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException($"no MoeCluster.sln above {AppContext.BaseDirectory}; run the tests from the repository");
        }
    }

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);
}
