namespace MoeCluster.Node;

/// <summary>The small model shipped in the repository (models/), found from the executable's or the working directory.</summary>
public static class DefaultModel
{
    public const string Name = "moe-tiny-fortunes";

    public static string Directory()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", Name);
                if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
            }
        }
        var image = Path.Combine("/models", Name);
        if (File.Exists(Path.Combine(image, "config.json"))) return image;
        throw new ArgumentException($"no --model given and the built-in model models/{Name} was not found above {AppContext.BaseDirectory} or {Environment.CurrentDirectory}");
    }
}
