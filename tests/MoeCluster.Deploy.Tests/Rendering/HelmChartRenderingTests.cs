using System.Text.Json.Nodes;

namespace MoeCluster.Deploy.Tests.Rendering;

public class HelmChartRenderingTests
{
    [Fact]
    public void The_default_values_render_statefulsets_services_and_a_secret_with_a_generated_ca_and_key()
    {
        var docs = HelmChart.Render();
        var sets = docs.Where(d => (string?)d["kind"] == "StatefulSet").ToList();
        Assert.Equal(["moecluster-experts", "moecluster-gateway"], sets.Select(s => (string)s["metadata"]!["name"]!).Order());
        var secret = Assert.Single(docs, d => (string?)d["kind"] == "Secret");
        foreach (var key in new[] { "tls.crt", "tls.key", "ca.crt", "api-keys" }) Assert.NotNull(secret["data"]![key]);
    }

    [Fact]
    public void The_production_example_renders()
    {
        var docs = HelmChart.Render(YamlJson.LoadFile(RepoPaths.Chart("examples/values-production.yaml")));
        Assert.Contains(docs, d => (string?)d["kind"] == "ScaledObject");
    }

    [Fact]
    public void Turning_tls_off_without_declaring_the_network_trusted_fails_the_install()
    {
        var off = JsonNode.Parse("""{"cluster":{"tls":{"enabled":false}}}""");
        var error = Assert.Throws<HelmFunctions.ChartFailure>(() => HelmChart.Render(off));
        Assert.Contains("trustedNetwork", error.Message);
    }
}
