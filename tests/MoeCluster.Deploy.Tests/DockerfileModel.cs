using System.Text.Json;
using System.Text.RegularExpressions;

namespace MoeCluster.Deploy.Tests;

/// <summary>A Dockerfile read the way the builder reads it: continuation lines joined, comments dropped, stages
/// split at FROM, and <c>${ARG}</c> in FROM resolved from the global ARG defaults (or given build args).</summary>
public sealed partial class DockerfileModel
{
    public sealed record Instruction(string Keyword, string Arguments);

    public sealed record Stage(string BaseImage, string? Name, IReadOnlyList<Instruction> Instructions);

    public IReadOnlyDictionary<string, string> GlobalArgs { get; }
    public IReadOnlyList<Stage> Stages { get; }

    DockerfileModel(IReadOnlyDictionary<string, string> globalArgs, IReadOnlyList<Stage> stages)
    {
        GlobalArgs = globalArgs;
        Stages = stages;
    }

    public static DockerfileModel Load(string path) => Parse(File.ReadAllText(path));

    public static DockerfileModel Parse(string text)
    {
        var globalArgs = new Dictionary<string, string>();
        var stages = new List<(string Base, string? Name, List<Instruction> Body)>();
        foreach (var instruction in Instructions(text))
        {
            if (instruction.Keyword == "FROM")
            {
                var match = FromLine().Match(instruction.Arguments);
                if (!match.Success) throw new FormatException($"cannot read FROM {instruction.Arguments}");
                stages.Add((match.Groups["image"].Value, match.Groups["name"].Success ? match.Groups["name"].Value : null, []));
            }
            else if (stages.Count == 0)
            {
                if (instruction.Keyword != "ARG") throw new FormatException($"{instruction.Keyword} before the first FROM");
                var (name, value) = SplitArg(instruction.Arguments);
                globalArgs[name] = value;
            }
            else stages[^1].Body.Add(instruction);
        }
        return new DockerfileModel(globalArgs, stages.Select(s => new Stage(s.Base, s.Name, s.Body)).ToList());
    }

    public Stage this[string name] => Stages.SingleOrDefault(s => s.Name == name)
        ?? throw new KeyNotFoundException($"Dockerfile has no stage named {name}");

    /// <summary>The chain of stages a stage builds on, itself first, ending at the one FROM an external image.</summary>
    public IReadOnlyList<Stage> Lineage(Stage stage, IReadOnlyDictionary<string, string>? buildArgs = null)
    {
        var chain = new List<Stage> { stage };
        while (true)
        {
            var baseName = ResolveArgs(chain[^1].BaseImage, buildArgs);
            var parent = Stages.TakeWhile(s => s != chain[^1]).LastOrDefault(s => s.Name == baseName);
            if (parent is null) return chain;
            chain.Add(parent);
        }
    }

    /// <summary>The external image a stage finally runs on.</summary>
    public string ExternalBase(Stage stage, IReadOnlyDictionary<string, string>? buildArgs = null) =>
        ResolveArgs(Lineage(stage, buildArgs)[^1].BaseImage, buildArgs);

    public string ResolveArgs(string text, IReadOnlyDictionary<string, string>? buildArgs = null) =>
        ArgReference().Replace(text, m =>
        {
            var name = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
            if (buildArgs is not null && buildArgs.TryGetValue(name, out var given)) return given;
            return GlobalArgs.TryGetValue(name, out var value) ? value
                : throw new KeyNotFoundException($"FROM uses ${name}, which no global ARG declares");
        });

    /// <summary>The JSON array of an exec-form instruction (ENTRYPOINT ["moecluster"]).</summary>
    public static string[] ExecForm(Instruction instruction)
    {
        try
        {
            return JsonSerializer.Deserialize<string[]>(instruction.Arguments)
                ?? throw new FormatException($"{instruction.Keyword} is null");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{instruction.Keyword} {instruction.Arguments} is not exec form (a JSON array)", e);
        }
    }

    static IEnumerable<Instruction> Instructions(string text)
    {
        var pending = "";
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.TrimStart().StartsWith('#')) continue;
            if (line.EndsWith('\\'))
            {
                pending += line[..^1] + " ";
                continue;
            }
            var full = (pending + line).Trim();
            pending = "";
            if (full.Length == 0) continue;
            var space = full.IndexOfAny([' ', '\t']);
            yield return space < 0
                ? new Instruction(full.ToUpperInvariant(), "")
                : new Instruction(full[..space].ToUpperInvariant(), full[(space + 1)..].Trim());
        }
        if (pending.Trim().Length > 0) throw new FormatException("the Dockerfile ends inside a continued line");
    }

    static (string Name, string Value) SplitArg(string arguments)
    {
        var equals = arguments.IndexOf('=');
        return equals < 0 ? (arguments.Trim(), "") : (arguments[..equals].Trim(), arguments[(equals + 1)..].Trim());
    }

    [GeneratedRegex(@"^(--platform=\S+\s+)?(?<image>\S+)(\s+AS\s+(?<name>\S+))?$", RegexOptions.IgnoreCase)]
    private static partial Regex FromLine();

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex ArgReference();
}
