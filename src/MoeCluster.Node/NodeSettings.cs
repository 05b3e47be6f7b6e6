using System.CommandLine;
using System.Text.Json.Nodes;

namespace MoeCluster.Node;

/// <summary>Resolves a setting from, in order: the command line, the environment (MOECLUSTER_NAME), a JSON config file
/// (--config, keys as the option names without dashes), then the default.</summary>
public sealed class NodeSettings(ParseResult parse, JsonObject? file)
{
    public static NodeSettings From(ParseResult parse, Option<string?> configOption)
    {
        var path = parse.GetValue(configOption) ?? Environment.GetEnvironmentVariable("MOECLUSTER_CONFIG");
        JsonObject? file = null;
        if (!string.IsNullOrEmpty(path))
        {
            if (!File.Exists(path)) throw new ArgumentException($"--config: file '{path}' not found");
            file = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ArgumentException($"--config: '{path}' is not a JSON object");
        }
        return new NodeSettings(parse, file);
    }

    public T Get<T>(Option<T> option, T fallback)
    {
        var result = parse.GetResult(option);
        if (result is not null && !result.Implicit) return parse.GetValue(option)!;
        var name = option.Name.TrimStart('-');
        var env = Environment.GetEnvironmentVariable("MOECLUSTER_" + name.Replace('-', '_').ToUpperInvariant());
        if (!string.IsNullOrEmpty(env)) return Convert<T>(env, option.Name, "environment");
        if (file?[name] is JsonNode node) return Convert<T>(node is JsonValue v && v.TryGetValue<string>(out var s) ? s : node.ToJsonString(), option.Name, "config file");
        return fallback;
    }

    static T Convert<T>(string text, string name, string source)
    {
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        try
        {
            object value = type == typeof(string) ? text
                : type == typeof(int) ? int.Parse(text)
                : type == typeof(bool) ? bool.Parse(text)
                : type == typeof(double) ? double.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
                : type == typeof(string[]) ? text.Trim('[', ']').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.Trim('"')).ToArray()
                : throw new NotSupportedException(type.Name);
            return (T)value;
        }
        catch (FormatException)
        {
            throw new ArgumentException($"{name} (from the {source}): '{text}' is not a valid {type.Name}");
        }
    }
}
