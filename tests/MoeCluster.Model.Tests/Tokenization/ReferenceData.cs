using System.IO.Compression;
using System.Text.Json;
using MoeCluster.TestSupport;

namespace MoeCluster.Model.Tests.Tokenization;

/// <summary>
/// The committed tokenizer reference (tests/data/tokenizers, written by make-reference.mjs with HF tokenizers) and
/// the real tokenizer files it was made from, which deploy/fetch-tokenizers.sh (run by test.sh) keeps in a cache.
/// A missing file fails the test, naming the command that provides it.
/// </summary>
internal static class ReferenceData
{
    public static string DataDirectory => TestData.Directory("tokenizers");

    /// <summary>The directory holding NAME's tokenizer.json and tokenizer_config.json.</summary>
    public static string TokenizerDirectory(string name)
    {
        string cache = Environment.GetEnvironmentVariable("MOECLUSTER_TOKENIZER_CACHE") is { Length: > 0 } set
            ? set
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "moecluster", "tokenizers");
        string directory = Path.Combine(cache, name);
        if (!File.Exists(Path.Combine(directory, "tokenizer.json")))
        {
            throw new FileNotFoundException(
                $"{directory}/tokenizer.json is missing: run `bash deploy/fetch-tokenizers.sh` (test.sh runs it through deploy/install-test-deps.sh).");
        }
        return directory;
    }

    public static IReadOnlyList<string> Corpus { get; } = Lines("corpus.jsonl.gz").Select(l => JsonSerializer.Deserialize<string>(l)!).ToList();

    /// <summary>NAME.ids.gz: per corpus string, the ids without and with special tokens.</summary>
    public static List<(int[] Plain, int[] WithSpecial)> Ids(string name) =>
        [.. Lines($"{name}.ids.gz").Select(line =>
        {
            var halves = line.Split('\t');
            return (ParseIds(halves[0]), ParseIds(halves[1]));
        })];

    public sealed record DecodeCase(int[] Ids, string Text, string TextSkip);

    public static List<DecodeCase> Decodes(string name) =>
        [.. Lines($"{name}.decode.jsonl.gz").Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            return new DecodeCase([.. root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())],
                root.GetProperty("text").GetString()!, root.GetProperty("text_skip").GetString()!);
        })];

    private static int[] ParseIds(string text) => text.Length == 0 ? [] : [.. text.Split(',').Select(int.Parse)];

    private static IEnumerable<string> Lines(string file)
    {
        using var stream = new GZipStream(File.OpenRead(Path.Combine(DataDirectory, file)), CompressionMode.Decompress);
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            yield return line;
        }
    }
}
