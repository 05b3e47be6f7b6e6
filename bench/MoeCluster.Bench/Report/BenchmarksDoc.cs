namespace MoeCluster.Bench.Report;

/// <summary>docs/BENCHMARKS.md: generated sections live between <c>&lt;!-- NAME:begin --&gt;</c> and
/// <c>&lt;!-- NAME:end --&gt;</c> markers, so the hand-written explanation around them survives every run.</summary>
public static class BenchmarksDoc
{
    /// <summary>The repository root: the nearest directory at or above the working directory holding MoeCluster.sln.</summary>
    public static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MoeCluster.sln"))) return dir.FullName;
        throw new InvalidOperationException(
            $"MoeCluster.sln not found at or above {Directory.GetCurrentDirectory()}; run from the repository or pass --doc PATH");
    }

    public static void ReplaceSection(string path, string section, string markdown)
    {
        string begin = $"<!-- {section}:begin -->", end = $"<!-- {section}:end -->";
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found; create it with the markers {begin} and {end}", path);
        var text = File.ReadAllText(path);
        int b = text.IndexOf(begin, StringComparison.Ordinal), e = text.IndexOf(end, StringComparison.Ordinal);
        if (b < 0 || e < b)
            throw new InvalidOperationException($"{path}: markers {begin} … {end} not found (in that order); add them where the generated tables belong");
        var updated = text[..(b + begin.Length)] + "\n" + markdown.TrimEnd() + "\n" + text[e..];
        File.WriteAllText(path, updated);
    }
}
