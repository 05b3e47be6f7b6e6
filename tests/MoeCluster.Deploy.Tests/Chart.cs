using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using YamlDotNet.RepresentationModel;

namespace MoeCluster.Deploy.Tests;

/// <summary>The chart under helm/moecluster as the tests see it.</summary>
public static partial class Chart
{
    public static JsonObject Values => (JsonObject)YamlJson.LoadFile(RepoPaths.Chart("values.yaml"))!;

    public static JsonSchema Schema => JsonSchema.FromText(File.ReadAllText(RepoPaths.Chart("values.schema.json")));

    /// <summary>Every file under templates/, YAML manifests and helpers alike.</summary>
    public static IReadOnlyList<string> TemplateFiles =>
        Directory.GetFiles(RepoPaths.Chart("templates")).Order(StringComparer.Ordinal).ToList();

    public static IReadOnlyList<string> ManifestTemplates =>
        TemplateFiles.Where(f => f.EndsWith(".yaml", StringComparison.Ordinal)).ToList();

    /// <summary>The YAML documents of one template after stripping template actions (empty documents left out).</summary>
    public static IReadOnlyList<YamlMappingNode> Documents(string templateName)
    {
        var stripped = HelmTemplateStripper.Strip(File.ReadAllText(RepoPaths.Chart(Path.Combine("templates", templateName))));
        return YamlJson.LoadAll(stripped).Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    /// <summary>Evaluation errors as "location: message" lines, empty when the instance is valid.</summary>
    public static IReadOnlyList<string> SchemaErrors(JsonNode? instance)
    {
        var results = Schema.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (results.IsValid) return [];
        return results.Details.Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))
            .DefaultIfEmpty("invalid (no details)").ToList();
    }

    /// <summary>The dotted paths after <c>.Values</c> that templates and helpers read, e.g. <c>ports.http</c>.</summary>
    public static IReadOnlySet<string> ValuesPathsUsed() => MatchesInTemplates(ValuesPath());

    /// <summary>Fields read through a variable, e.g. <c>$pool.replicas</c> gives <c>replicas</c>.</summary>
    public static IReadOnlySet<string> FieldsReadThrough(string variable) =>
        MatchesInTemplates(new Regex(@"\$" + variable + @"\.([A-Za-z_][A-Za-z0-9_]*)"));

    static HashSet<string> MatchesInTemplates(Regex pattern)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in TemplateFiles)
        {
            foreach (var action in HelmTemplateStripper.Actions(File.ReadAllText(file)).Where(a => !a.IsComment))
                foreach (Match match in pattern.Matches(action.Body))
                    found.Add(match.Groups[1].Value.TrimStart('.'));
        }
        return found;
    }

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")]
    private static partial Regex ValuesPath();
}
