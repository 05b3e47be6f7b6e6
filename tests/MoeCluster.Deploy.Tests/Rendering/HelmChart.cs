using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace MoeCluster.Deploy.Tests.Rendering;

/// <summary><c>helm template</c> for helm/moecluster, in process: values.yaml merged with the given overrides, every
/// manifest template rendered with <see cref="GoTemplate"/>, the output split into YAML documents.</summary>
public static class HelmChart
{
    public const string ReleaseName = "moecluster";
    public const string Namespace = "moecluster";

    public static IReadOnlyList<JsonObject> Render(params JsonNode?[] overrides)
    {
        var values = overrides.Aggregate((JsonNode?)Chart.Values, YamlJson.Merge);
        var chart = (JsonObject)YamlJson.LoadFile(RepoPaths.Chart("Chart.yaml"))!;
        var functions = new HelmFunctions();
        var engine = new GoTemplate(functions);
        const string basePath = "moecluster/templates";
        foreach (var file in Chart.TemplateFiles)
            engine.Add($"{basePath}/{Path.GetFileName(file)}", File.ReadAllText(file));
        Func<List<object?>, object?> getFile = args => File.ReadAllText(RepoPaths.Chart((string)args[0]!));
        var documents = new List<JsonObject>();
        foreach (var file in Chart.ManifestTemplates)
        {
            var name = $"{basePath}/{Path.GetFileName(file)}";
            var root = new Dictionary<string, object?>
            {
                ["Values"] = Plain(values),
                ["Release"] = new Dictionary<string, object?> { ["Name"] = ReleaseName, ["Namespace"] = Namespace, ["Service"] = "Helm", ["IsInstall"] = true, ["IsUpgrade"] = false },
                ["Chart"] = new Dictionary<string, object?> { ["Name"] = (string?)chart["name"], ["Version"] = (string?)chart["version"], ["AppVersion"] = chart["appVersion"]?.ToString() },
                ["Template"] = new Dictionary<string, object?> { ["BasePath"] = basePath, ["Name"] = name },
                ["Files"] = new Dictionary<string, object?> { ["Get"] = getFile },
            };
            var text = engine.Execute(name, root);
            foreach (var doc in YamlJson.LoadAll(text))
                if (doc.RootNode is YamlMappingNode && YamlJson.ToJson(doc.RootNode) is JsonObject o) documents.Add(o);
        }
        return documents;
    }

    /// <summary>JSON nodes as the plain values templates work on.</summary>
    public static object? Plain(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(e => e.Key, e => Plain(e.Value)),
        JsonArray a => a.Select(Plain).ToList(),
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        _ => node.ToString(),
    };
}
