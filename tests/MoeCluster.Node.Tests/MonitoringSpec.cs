using System.Text.Json;
using System.Text.RegularExpressions;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>deploy/prometheus and deploy/grafana are valid and refer only to series that exist; docs/METRICS.md lists
/// every series.</summary>
public sealed partial class MonitoringSpec
{
    [GeneratedRegex(@"\bmoecluster_[a-z_]+\b")]
    private static partial Regex SeriesName();

    /// <summary>A histogram is queried through its _bucket/_sum/_count series.</summary>
    static string Base(string name) => Regex.Replace(name, "_(bucket|sum|count)$", "");

    static void AssertKnown(IEnumerable<string> names, string file)
    {
        var known = RepoFiles.OwnSeries.ToHashSet();
        var unknown = names.Select(Base).Where(n => !known.Contains(n)).Distinct().ToList();
        Assert.True(unknown.Count == 0, $"{file} uses series no code exports: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Metrics_doc_lists_every_series_with_its_bound_on_per_expert_series()
    {
        var doc = File.ReadAllText(RepoFiles.Path("docs", "METRICS.md"));
        var missing = RepoFiles.OwnSeries.Where(s => !doc.Contains($"`{s}`")).ToList();
        Assert.True(missing.Count == 0, $"docs/METRICS.md does not list: {string.Join(", ", missing)}");
        Assert.Contains("ExpertSeriesLimit", doc);
        AssertKnown(SeriesName().Matches(doc).Select(m => m.Value), "docs/METRICS.md");
    }

    [Fact]
    public void Dashboard_is_valid_json_whose_every_panel_queries_existing_series()
    {
        var path = RepoFiles.Path("deploy", "grafana", "moecluster-dashboard.json");
        using var dashboard = JsonDocument.Parse(File.ReadAllText(path));
        var panels = dashboard.RootElement.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row").ToList();
        Assert.True(panels.Count >= 20, $"only {panels.Count} panels");
        var exprs = panels.SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!)).ToList();
        Assert.All(panels, p => Assert.True(p.GetProperty("targets").GetArrayLength() > 0, $"panel '{p.GetProperty("title")}' has no query"));
        AssertKnown(exprs.SelectMany(e => SeriesName().Matches(e).Select(m => m.Value)), path);
        foreach (var needed in new[] { "moecluster_time_to_first_token_seconds_bucket", "moecluster_inter_token_latency_seconds_bucket",
                     "moecluster_e2e_request_latency_seconds_bucket", "moecluster_expert_routed_tokens_total", "moecluster_layer_balancedness",
                     "moecluster_cluster_members", "moecluster_placement_moves_total", "moecluster_recoveries_total", "moecluster_kv_cache_bytes_in_use" })
            Assert.Contains(exprs, e => e.Contains(needed));
        Assert.Contains(exprs, e => e.Contains("histogram_quantile(0.99"));
        Assert.Contains(panels, p => p.GetProperty("type").GetString() == "heatmap");
    }

    [Fact]
    public void Prometheus_config_and_alert_rules_pass_promtool_and_their_unit_tests()
    {
        var promtool = RepoFiles.Tool("promtool");
        var dir = RepoFiles.Path("deploy", "prometheus");
        foreach (var args in new[] { new[] { "check", "config", "prometheus.yml" }, ["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"] })
        {
            var (code, output) = RepoFiles.Run(promtool, dir, args);
            Assert.True(code == 0, $"promtool {string.Join(' ', args)} failed:\n{output}");
        }
        var rules = File.ReadAllText(Path.Combine(dir, "alerts.yml"));
        foreach (var alert in new[] { "MoeClusterNodeDown", "MoeClusterQueueSaturated", "MoeClusterHotExpert" }) Assert.Contains($"alert: {alert}", rules);
        AssertKnown(SeriesName().Matches(rules).Select(m => m.Value), "alerts.yml");
    }
}
