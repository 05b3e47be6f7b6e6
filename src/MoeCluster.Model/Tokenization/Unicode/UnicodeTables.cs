using System.IO.Compression;
using System.Globalization;

namespace MoeCluster.Model.Tokenization.Unicode;

/// <summary>
/// The Unicode Character Database facts behind <see cref="UnicodeNormalization"/>, read once from the embedded
/// <c>unicode-data.txt.gz</c> (written by tools/unicode/make-unicode-data.py; its header names the format).
/// </summary>
internal sealed class UnicodeTables
{
    private static readonly Lazy<UnicodeTables> Shared = new(Load);

    private UnicodeTables(string version) => Version = version;

    public static UnicodeTables Instance => Shared.Value;

    /// <summary>The Unicode version the tables were taken from.</summary>
    public string Version { get; }

    public Dictionary<int, byte> CombiningClass { get; } = [];
    public Dictionary<int, int[]> Canonical { get; } = [];
    public Dictionary<int, int[]> Compatibility { get; } = [];
    public Dictionary<long, int> Composition { get; } = [];
    public Dictionary<int, int[]> Lowercase { get; } = [];

    private static UnicodeTables Load()
    {
        const string name = "MoeCluster.Model.unicode-data.txt.gz";
        using var resource = typeof(UnicodeTables).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded resource {name} is missing from {typeof(UnicodeTables).Assembly.GetName().Name}");
        using var reader = new StreamReader(new GZipStream(resource, CompressionMode.Decompress));
        UnicodeTables? tables = null;
        while (reader.ReadLine() is { } line)
        {
            var parts = line.Split(' ');
            if (parts[0] == "v")
            {
                tables = new UnicodeTables(parts[1]);
                continue;
            }
            var t = tables ?? throw new InvalidDataException($"{name}: the version line must come first");
            int cp = Hex(parts[1]);
            switch (parts[0])
            {
                case "c": t.CombiningClass[cp] = byte.Parse(parts[2], CultureInfo.InvariantCulture); break;
                case "d": t.Canonical[cp] = CodePoints(parts); break;
                case "k": t.Compatibility[cp] = CodePoints(parts); break;
                case "p": t.Composition[Pair(cp, Hex(parts[2]))] = Hex(parts[3]); break;
                case "l": t.Lowercase[cp] = CodePoints(parts); break;
                default: throw new InvalidDataException($"{name}: unknown line \"{line}\"");
            }
        }
        return tables ?? throw new InvalidDataException($"{name} is empty");
    }

    public static long Pair(int first, int second) => ((long)first << 21) | (uint)second;

    private static int Hex(string text) => int.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static int[] CodePoints(string[] parts) => [.. parts.Skip(2).Select(Hex)];
}
