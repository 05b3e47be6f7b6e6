using System.CommandLine;
using System.Reflection;
using System.Text.RegularExpressions;
using MoeCluster.Node.Commands;

namespace MoeCluster.Deploy.Tests;

/// <summary>The part of the chart's contract with the program that can be checked without rendering: every
/// MOECLUSTER_* variable the StatefulSet sets is a setting `moecluster serve` reads, so a renamed flag cannot leave the
/// chart setting a variable nobody reads.</summary>
public class ChartProgramContractTests
{
    /// <summary>Read straight from the environment rather than through a flag.</summary>
    static readonly string[] DirectVariables = ["MOECLUSTER_API_KEYS", "MOECLUSTER_TLS_CERTIFICATE_PASSWORD", "MOECLUSTER_CONFIG"];

    static IEnumerable<string> ServeVariables() => typeof(ServeCommand).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => f.GetValue(null)).OfType<Option>()
        .Select(o => "MOECLUSTER_" + o.Name.TrimStart('-').Replace('-', '_').ToUpperInvariant());

    [Fact]
    public void Every_variable_the_statefulset_sets_is_read_by_moecluster_serve()
    {
        var template = File.ReadAllText(RepoPaths.Chart("templates/statefulset.yaml"));
        var set = Regex.Matches(template, @"- name: (MOECLUSTER_[A-Z0-9_]+)").Select(m => m.Groups[1].Value).Distinct().ToList();
        var read = ServeVariables().Concat(DirectVariables).ToHashSet();

        Assert.Contains("MOECLUSTER_SEED_NODES", set);
        Assert.Contains("MOECLUSTER_TLS_KEY", set);
        Assert.Contains("MOECLUSTER_TRUSTED_NETWORK", set);
        var unread = set.Where(v => !read.Contains(v)).ToList();
        Assert.True(unread.Count == 0, $"the StatefulSet sets variables moecluster serve does not read: {string.Join(", ", unread)}");
    }

    [Fact]
    public void Remoting_binds_the_pod_ip_and_tls_is_on_by_default()
    {
        var template = File.ReadAllText(RepoPaths.Chart("templates/statefulset.yaml"));
        Assert.Matches(@"MOECLUSTER_HOSTNAME\s+valueFrom:\s+fieldRef:\s+fieldPath: status.podIP", template);
        Assert.True(Chart.Values["cluster"]!["tls"]!["enabled"]!.GetValue<bool>());
        Assert.False(Chart.Values["cluster"]!["trustedNetwork"]!.GetValue<bool>());
        Assert.True(Chart.Values["auth"]!["enabled"]!.GetValue<bool>());
        var secret = File.ReadAllText(RepoPaths.Chart("templates/secret.yaml"));
        Assert.Contains("genCA", secret);
        Assert.Contains("genSignedCert", secret);
        Assert.Contains("lookup \"v1\" \"Secret\"", secret);
    }
}
