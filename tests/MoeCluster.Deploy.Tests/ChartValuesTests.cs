using System.Text.Json.Nodes;
using MoeCluster.Node;

namespace MoeCluster.Deploy.Tests;

public class ChartValuesTests
{
    [Fact]
    public void Every_values_path_the_templates_read_exists_in_values_yaml()
    {
        var values = Chart.Values;
        var used = Chart.ValuesPathsUsed();

        Assert.Contains("ports.http", used);
        var missing = used.Where(path => !Exists(values, path)).Order().ToList();
        Assert.True(missing.Count == 0, $"templates read .Values paths that values.yaml lacks: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Every_pool_field_the_templates_read_is_allowed_by_the_schema()
    {
        var poolProperties = SchemaObject("definitions", "pool", "properties");
        var autoscalingProperties = SchemaObject("definitions", "pool", "properties", "autoscaling", "properties");

        var unknownPool = Chart.FieldsReadThrough("pool").Where(f => !poolProperties.ContainsKey(f)).ToList();
        var unknownAutoscaling = Chart.FieldsReadThrough("as").Where(f => !autoscalingProperties.ContainsKey(f)).ToList();

        Assert.Contains("replicas", Chart.FieldsReadThrough("pool"));
        Assert.True(unknownPool.Count == 0, $"templates read $pool fields the schema rejects: {string.Join(", ", unknownPool)}");
        Assert.True(unknownAutoscaling.Count == 0, $"templates read $as fields the schema rejects: {string.Join(", ", unknownAutoscaling)}");
    }

    [Fact]
    public void Values_yaml_satisfies_the_schema()
    {
        Assert.Empty(Chart.SchemaErrors(Chart.Values));
    }

    public static TheoryData<string> Examples() =>
        new(Directory.GetFiles(RepoPaths.Chart("examples"), "*.yaml").Select(Path.GetFileName).Select(n => n!));

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_values_merged_over_the_defaults_satisfy_the_schema(string example)
    {
        var merged = YamlJson.Merge(Chart.Values, YamlJson.LoadFile(RepoPaths.Chart(Path.Combine("examples", example))));

        Assert.Empty(Chart.SchemaErrors(merged));
    }

    [Theory]
    [InlineData("imagee", "top-level key")]
    [InlineData("pools.experts.replica", "pool field")]
    [InlineData("metrics.serviceMonitor.enable", "nested switch")]
    [InlineData("cluster.tls.existingSecrets", "TLS setting")]
    public void Schema_rejects_a_misspelt_key(string dottedPath, string what)
    {
        var values = Chart.Values;
        var segments = dottedPath.Split('.');
        var parent = segments[..^1].Aggregate((JsonNode)values, (node, key) => node[key]!);
        parent[segments[^1]] = true;

        Assert.True(Chart.SchemaErrors(values).Count > 0, $"the schema accepted the misspelt {what} {dottedPath}");
    }

    [Theory]
    [InlineData("pools.experts.device", "\"gpu\"")]
    [InlineData("pools.experts.roles", "[\"experts\"]")]
    [InlineData("pools.experts.replicas", "-1")]
    [InlineData("ports.remoting", "\"4053\"")]
    public void Schema_rejects_a_wrong_value(string dottedPath, string json)
    {
        var values = Chart.Values;
        var segments = dottedPath.Split('.');
        var parent = segments[..^1].Aggregate((JsonNode)values, (node, key) => node[key]!);
        parent[segments[^1]] = JsonNode.Parse(json);

        Assert.True(Chart.SchemaErrors(values).Count > 0, $"the schema accepted {dottedPath} = {json}");
    }

    [Fact]
    public void Pool_names_must_be_dns_labels()
    {
        var values = Chart.Values;
        values["pools"]!["GPU_Experts"] = values["pools"]!["experts"]!.DeepClone();

        Assert.Contains(Chart.SchemaErrors(values), e => e.Contains("/pools", StringComparison.Ordinal));
    }

    [Fact]
    public void Chart_ports_equal_the_node_defaults()
    {
        var ports = Chart.Values["ports"]!;

        Assert.Equal(NodeDefaults.HttpPort, ports["http"]!.GetValue<long>());
        Assert.Equal(NodeDefaults.RemotingPort, ports["remoting"]!.GetValue<long>());
    }

    [Fact]
    public void Probes_use_the_node_health_endpoints_and_shutdown_has_time_to_hand_experts_off()
    {
        var values = Chart.Values;

        Assert.Equal("/healthz", values["probes"]!["liveness"]!["path"]!.GetValue<string>());
        Assert.Equal("/healthz", values["probes"]!["startup"]!["path"]!.GetValue<string>());
        Assert.Equal("/readyz", values["probes"]!["readiness"]!["path"]!.GetValue<string>());
        Assert.True(values["terminationGracePeriodSeconds"]!.GetValue<long>() >= 60);
        Assert.True(values["preStopSleepSeconds"]!.GetValue<long>() < values["terminationGracePeriodSeconds"]!.GetValue<long>());
    }

    [Fact]
    public void Default_seed_pool_is_an_enabled_gateway_pool_with_enough_replicas()
    {
        var values = Chart.Values;
        var seedPool = values["pools"]![values["cluster"]!["seedPool"]!.GetValue<string>()]!;

        Assert.True(seedPool["enabled"]!.GetValue<bool>());
        Assert.Contains("gateway", seedPool["roles"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.True(seedPool["replicas"]!.GetValue<long>() >= values["cluster"]!["seedCount"]!.GetValue<long>());
    }

    [Fact]
    public void Chart_yaml_declares_apiVersion_v2_name_version_and_appVersion()
    {
        var chart = YamlJson.LoadFile(RepoPaths.Chart("Chart.yaml"))!;

        Assert.Equal("v2", chart["apiVersion"]!.GetValue<string>());
        Assert.Equal("moecluster", chart["name"]!.GetValue<string>());
        Assert.Matches(@"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$", chart["version"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(chart["appVersion"]?.GetValue<string>()), "Chart.yaml has no appVersion (quote it)");
    }

    static bool Exists(JsonNode? node, string dottedPath)
    {
        foreach (var key in dottedPath.Split('.'))
        {
            if (node is not JsonObject map || !map.ContainsKey(key)) return false;
            node = map[key];
        }
        return true;
    }

    static JsonObject SchemaObject(params string[] path)
    {
        JsonNode? node = JsonNode.Parse(File.ReadAllText(RepoPaths.Chart("values.schema.json")));
        foreach (var key in path) node = node?[key];
        return node as JsonObject ?? throw new InvalidDataException($"values.schema.json has no object at {string.Join("/", path)}");
    }
}
