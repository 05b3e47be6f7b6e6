using YamlDotNet.RepresentationModel;

namespace MoeCluster.Deploy.Tests;

public class ChartTemplateTests
{
    public static TheoryData<string> ManifestTemplates() =>
        new(Chart.ManifestTemplates.Select(Path.GetFileName).Select(n => n!));

    [Theory]
    [MemberData(nameof(ManifestTemplates))]
    public void Template_parses_as_yaml_objects_with_apiVersion_and_kind(string template)
    {
        IReadOnlyList<YamlMappingNode> documents;
        try
        {
            documents = Chart.Documents(template);
        }
        catch (Exception e)
        {
            var stripped = HelmTemplateStripper.Strip(File.ReadAllText(RepoPaths.Chart(Path.Combine("templates", template))));
            throw new Xunit.Sdk.XunitException($"templates/{template} is not valid YAML once template actions are stripped: {e.Message}\n{stripped}");
        }
        foreach (var document in documents)
        {
            Assert.True(document.Children.ContainsKey("apiVersion"), $"templates/{template}: a document has no apiVersion");
            Assert.True(document.Children.ContainsKey("kind"), $"templates/{template}: a document has no kind");
        }
    }

    [Fact]
    public void Chart_renders_every_object_kind_the_deployment_needs()
    {
        var kinds = Chart.ManifestTemplates.Select(Path.GetFileName)
            .SelectMany(t => Chart.Documents(t!))
            .Select(d => Scalar(d, "kind"))
            .ToHashSet();

        string[] expected =
        [
            "StatefulSet", "Service", "Secret", "PersistentVolumeClaim", "HorizontalPodAutoscaler", "ScaledObject",
            "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap", "ServiceAccount",
        ];
        Assert.Empty(expected.Except(kinds));
    }

    [Fact]
    public void Headless_service_publishes_not_ready_pods_so_nodes_find_seeds_before_readiness()
    {
        var service = Assert.Single(Chart.Documents("service-headless.yaml"));
        var spec = (YamlMappingNode)service["spec"];

        Assert.Equal("None", Scalar(spec, "clusterIP"));
        Assert.Equal("true", Scalar(spec, "publishNotReadyAddresses"));
    }

    [Fact]
    public void Statefulset_probes_stop_hook_and_ports_are_wired()
    {
        var statefulSet = Assert.Single(Chart.Documents("statefulset.yaml"));
        var podSpec = (YamlMappingNode)((YamlMappingNode)((YamlMappingNode)statefulSet["spec"])["template"])["spec"];
        var container = (YamlMappingNode)((YamlSequenceNode)podSpec["containers"]).Children.Single();

        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
            Assert.True(container.Children.ContainsKey(probe), $"the node container has no {probe}");
        Assert.True(((YamlMappingNode)container["lifecycle"]).Children.ContainsKey("preStop"));
        Assert.True(podSpec.Children.ContainsKey("terminationGracePeriodSeconds"));
        var portNames = ((YamlSequenceNode)container["ports"]).Children.Cast<YamlMappingNode>()
            .Select(p => Scalar(p, "name"));
        Assert.Equal(["http", "remoting"], portNames);
    }

    [Fact]
    public void Container_ports_come_from_the_ports_values()
    {
        var template = File.ReadAllText(RepoPaths.Chart("templates/statefulset.yaml"));

        Assert.Contains("containerPort: {{ $.Values.ports.http }}", template);
        Assert.Contains("containerPort: {{ $.Values.ports.remoting }}", template);
    }

    [Fact]
    public void Seed_addresses_use_the_actor_system_name_and_the_headless_service()
    {
        var helpers = File.ReadAllText(RepoPaths.Chart("templates/_helpers.tpl"));

        Assert.Contains($"akka.tcp://{MoeCluster.Node.NodeDefaults.ActorSystemName}@", helpers);
        Assert.Contains("include \"moecluster.headlessName\"", helpers);
    }

    [Fact]
    public void Every_file_the_templates_read_exists_inside_the_chart_and_is_packaged()
    {
        var helmignore = File.ReadAllLines(RepoPaths.Chart(".helmignore"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var files = Chart.TemplateFiles
            .SelectMany(f => HelmTemplateStripper.Actions(File.ReadAllText(f)))
            .Select(a => System.Text.RegularExpressions.Regex.Match(a.Body, "\\.Files\\.Get \"([^\"]+)\""))
            .Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();

        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            Assert.True(File.Exists(RepoPaths.Chart(file)), $".Files.Get \"{file}\" names no file in helm/moecluster");
            Assert.DoesNotContain(helmignore, pattern => file.StartsWith(pattern.TrimEnd('/') + "/", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Every_included_template_is_defined()
    {
        var actions = Chart.TemplateFiles.Append(RepoPaths.Chart("templates/NOTES.txt")).Distinct()
            .SelectMany(f => HelmTemplateStripper.Actions(File.ReadAllText(f))).Where(a => !a.IsComment).ToList();
        var defined = actions.Select(a => System.Text.RegularExpressions.Regex.Match(a.Words, "^define \"([^\"]+)\""))
            .Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet();
        var included = actions.SelectMany(a => System.Text.RegularExpressions.Regex.Matches(a.Body, "include \"([^\"]+)\""))
            .Select(m => m.Groups[1].Value).ToHashSet();

        Assert.Contains("moecluster.seedNodes", included);
        Assert.Empty(included.Except(defined));
    }

    [Fact]
    public void Every_action_has_balanced_parentheses_outside_strings()
    {
        foreach (var file in Chart.TemplateFiles.Append(RepoPaths.Chart("templates/NOTES.txt")).Distinct())
        {
            foreach (var action in HelmTemplateStripper.Actions(File.ReadAllText(file)).Where(a => !a.IsComment))
            {
                var depth = 0;
                var inString = false;
                for (var i = 0; i < action.Body.Length; i++)
                {
                    var c = action.Body[i];
                    if (inString) { if (c == '\\') i++; else if (c == '"') inString = false; continue; }
                    if (c == '"') inString = true;
                    else if (c == '(') depth++;
                    else if (c == ')' && --depth < 0) break;
                }
                Assert.True(depth == 0 && !inString, $"{Path.GetFileName(file)}: unbalanced parentheses or quotes in {{{{{action.Body}}}}}");
            }
        }
    }

    [Fact]
    public void Dashboard_is_a_grafana_dashboard_with_panels()
    {
        using var dashboard = System.Text.Json.JsonDocument.Parse(File.ReadAllText(RepoPaths.Chart("dashboards/moecluster-dashboard.json")));

        Assert.False(string.IsNullOrEmpty(dashboard.RootElement.GetProperty("title").GetString()));
        Assert.True(dashboard.RootElement.GetProperty("panels").GetArrayLength() > 0);
    }

    [Fact]
    public void The_chart_ships_the_same_dashboard_as_deploy_grafana()
    {
        // Helm cannot read files outside the chart, so the chart carries a copy; it must not drift.
        Assert.Equal(File.ReadAllText(Path.Combine(RepoPaths.Root, "deploy", "grafana", "moecluster-dashboard.json")),
                     File.ReadAllText(RepoPaths.Chart("dashboards/moecluster-dashboard.json")));
    }

    static string Scalar(YamlMappingNode node, string key) =>
        ((YamlScalarNode)node[key]).Value ?? throw new InvalidDataException($"{key} is empty");
}
