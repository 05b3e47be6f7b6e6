using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MoeCluster.Deploy.Tests;

/// <summary>YAML documents as JSON nodes (YAML 1.2 core schema for plain scalars), and Helm's values merge.</summary>
public static partial class YamlJson
{
    public static IReadOnlyList<YamlDocument> LoadAll(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.ToList();
    }

    public static JsonNode? LoadFile(string path)
    {
        var documents = LoadAll(File.ReadAllText(path));
        if (documents.Count != 1) throw new InvalidDataException($"{path}: expected one YAML document, found {documents.Count}");
        return ToJson(documents[0].RootNode);
    }

    public static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new InvalidDataException($"unsupported YAML node {node.GetType().Name} at {node.Start}"),
    };

    static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain) return JsonValue.Create(text);
        if (text is "" or "~" or "null" or "Null" or "NULL") return null;
        if (text is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (text is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (Integer().IsMatch(text)) return JsonValue.Create(long.Parse(text, CultureInfo.InvariantCulture));
        if (Float().IsMatch(text)) return JsonValue.Create(double.Parse(text, CultureInfo.InvariantCulture));
        return JsonValue.Create(text);
    }

    /// <summary>What <c>helm install -f override.yaml</c> does to values.yaml: maps merge key by key, a null removes
    /// the key, anything else replaces.</summary>
    public static JsonNode? Merge(JsonNode? defaults, JsonNode? overrides)
    {
        if (defaults is not JsonObject baseMap || overrides is not JsonObject overrideMap)
            return overrides?.DeepClone();
        var merged = (JsonObject)baseMap.DeepClone();
        foreach (var (key, value) in overrideMap)
        {
            if (value is null) merged.Remove(key);
            else merged[key] = Merge(merged[key], value);
        }
        return merged;
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex Integer();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex Float();
}
