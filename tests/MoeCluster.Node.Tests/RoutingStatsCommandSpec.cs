using MoeCluster.Node.Tests.Support;
using MoeCluster.Placement;

namespace MoeCluster.Node.Tests;

/// <summary>`moecluster routing-stats` profiles the shipped model on its held-out text.</summary>
public class RoutingStatsCommandSpec
{
    static readonly string Model = RepoFiles.Path("models", "moe-tiny-fortunes");

    [Fact]
    public void Routing_stats_of_the_shipped_model_on_held_out_text_show_its_hot_expert_and_write_a_routing_profile()
    {
        var output = Path.Combine(ServingHost.TempDirectory(), "profile.json");
        var data = Path.Combine(Model, "eval", "heldout-documents.txt");
        Assert.Equal(0, Cli.Run(["routing-stats", "--model", Model, "--data", data, "--documents", "48", "--output", output]));

        var profile = RoutingSnapshot.Parse(File.ReadAllText(output));
        Assert.Equal(8, profile.Experts);
        Assert.Equal(2, profile.TopK);
        Assert.Equal([0, 1, 2, 3], profile.Layers.Select(l => l.Layer));
        Assert.True(profile.Tokens > 1000, $"{profile.Tokens} tokens");
        foreach (var l in profile.Layers)
        {
            Assert.Equal(2 * l.Tokens, l.Load.Sum());
            Assert.Equal(l.Tokens, l.Coactivation.SelectMany(r => r).Sum() / 2);   // one pair per token, counted at [a][b] and [b][a]
            Assert.InRange(l.NormalisedEntropy, 0.05, 1.0);
            Assert.InRange(l.Fluctuation, 0.05, 1.0);
        }
        Assert.Equal(4 * profile.Layers[0].Tokens, profile.Layers[0].NextLayerCoactivation!.SelectMany(r => r).Sum());
        // The model card: the last layer sends over a fifth of its traffic to expert 3.
        var last = profile.Layers[3];
        Assert.Equal(3, Enumerable.Range(0, 8).MaxBy(e => last.Load[e]));
    }

    [Fact]
    public void Routing_stats_of_a_missing_file_fail_naming_it()
    {
        var missing = Path.Combine(ServingHost.TempDirectory(), "nothing.txt");
        var error = new StringWriter();
        var before = Console.Error;
        Console.SetError(error);
        try { Assert.Equal(2, Cli.Run(["routing-stats", "--model", Model, "--data", missing])); }
        finally { Console.SetError(before); }
        Assert.Contains(missing, error.ToString());
    }
}
