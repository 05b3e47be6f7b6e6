using System.Security.Cryptography;

namespace MoeCluster.Model.Training;

/// <summary>Documents read from text files, in file order then position, and the deterministic train/held-out split.</summary>
public static class TextDocuments
{
    /// <summary>The line that separates entries in a fortune(6) file; also used when writing the held-out documents.</summary>
    public const string FortuneSeparator = "%";

    /// <summary>Reads every file in order. A file with a line that is exactly "%" is a fortune file (documents between
    /// those lines); any other file splits at blank lines. Line ends become "\n"; blank documents are dropped.</summary>
    public static IReadOnlyList<string> Read(IEnumerable<string> files)
    {
        var documents = new List<string>();
        foreach (var file in files) documents.AddRange(Split(File.ReadAllText(file)));
        return documents;
    }

    public static IEnumerable<string> Split(string text)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        bool fortune = lines.Any(l => l == FortuneSeparator);
        var current = new List<string>();
        foreach (var line in lines)
        {
            bool boundary = fortune ? line == FortuneSeparator : line.Trim().Length == 0;
            if (!boundary) { current.Add(line); continue; }
            if (Flush(current) is string d) yield return d;
        }
        if (Flush(current) is string last) yield return last;
    }

    static string? Flush(List<string> lines)
    {
        var text = string.Join('\n', lines).Trim('\n', ' ', '\t');
        lines.Clear();
        return text.Length == 0 ? null : text;
    }

    /// <summary>Document i (0-based) is held out when (i + 1) is a multiple of <paramref name="every"/>: the 20th, 40th, …
    /// for every = 20. Depends only on document order, so the split is reproducible from the same files.</summary>
    public static (IReadOnlyList<string> Train, IReadOnlyList<string> HeldOut) SplitHeldOut(IReadOnlyList<string> documents, int every)
    {
        var train = new List<string>();
        var heldOut = new List<string>();
        for (int i = 0; i < documents.Count; i++) ((i + 1) % every == 0 ? heldOut : train).Add(documents[i]);
        return (train, heldOut);
    }

    /// <summary>Writes documents as a fortune file, which <see cref="Read"/> gives back unchanged.</summary>
    public static void WriteFortuneFile(string path, IEnumerable<string> documents)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, string.Join($"\n{FortuneSeparator}\n", documents) + $"\n{FortuneSeparator}\n");
    }

    /// <summary>Lower-case hex SHA-256 of a file, recorded in eval.json so the split can be checked against its sources.</summary>
    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
