using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>`moecluster plan` predicts memory, placement and throughput of the shipped model on a cluster.</summary>
public class PlanCommandSpec
{
    static readonly string Model = RepoFiles.Path("models", "moe-tiny-fortunes");

    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return (Cli.Run(args), stdout.ToString(), stderr.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void Plan_of_the_shipped_model_on_three_nodes_places_every_expert_and_predicts_throughput_per_batch()
    {
        var (code, output, _) = Run("plan", "--model", Model, "--nodes", "3", "--node-memory", "1", "--bandwidth", "1", "--batch", "1,32", "--json");
        Assert.Equal(0, code);
        var plan = JsonNode.Parse(output)!;
        Assert.True(plan["fits"]!.GetValue<bool>());
        var nodes = plan["per_node"]!.AsArray();
        Assert.Equal(3, nodes.Count);
        Assert.Equal(32, nodes.Sum(n => n!["experts"]!.GetValue<int>()));   // 4 layers × 8 experts, on the two expert nodes
        var decode = plan["decode"]!.AsArray().Select(d => d!["tokens_per_second"]!.GetValue<double>()).ToList();
        Assert.Equal(2, decode.Count);
        Assert.True(decode[0] > 0 && decode[1] > decode[0]);
        Assert.True(plan["measured"]!["stream_gbs"]!.GetValue<double>() > 0);
    }

    [Fact]
    public void Plan_says_when_the_experts_do_not_fit_and_refuses_impossible_arguments()
    {
        var (code, output, _) = Run("plan", "--model", Model, "--nodes", "2", "--node-memory", "0.001", "--bandwidth", "1");
        Assert.Equal(3, code);
        Assert.Contains("does not fit", output);
        var (bad, _, error) = Run("plan", "--model", Model, "--nodes", "0");
        Assert.Equal(2, bad);
        Assert.Contains("--nodes", error);
    }
}
