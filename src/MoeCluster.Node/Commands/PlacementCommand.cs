using System.CommandLine;
using System.Text.Json.Nodes;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster placement`: which node holds which expert, as the gateway sees it.</summary>
public static class PlacementCommand
{
    static readonly Option<string> Gateway = new("--gateway") { Description = "gateway node URL", DefaultValueFactory = _ => $"http://127.0.0.1:{NodeDefaults.HttpPort}" };
    static readonly Option<bool> Json = new("--json") { Description = "print the raw JSON" };

    public static Command Create()
    {
        var c = new Command("placement", "List which node holds which expert.") { Gateway, Json };
        c.SetAction(async (p, ct) =>
        {
            using var http = new HttpClient();
            string text;
            try { text = await http.GetStringAsync(p.GetValue(Gateway)!.TrimEnd('/') + "/v1/cluster/placement", ct); }
            catch (HttpRequestException e) { Console.Error.WriteLine($"moecluster placement: {e.Message}"); return 2; }
            if (p.GetValue(Json)) { Console.WriteLine(text); return 0; }
            var root = JsonNode.Parse(text)!;
            var strategy = root["strategy"]?.GetValue<string>() ?? "even";
            var share = root["colocated_pair_share"]?.GetValue<double>();
            Console.WriteLine($"strategy: {strategy}{(root["routing_profile"]?.GetValue<string>() is string profile ? $" (routing profile {profile})" : "")}"
                + (share is double v ? $"; {v:P0} of the profile's co-activated expert pairs share a node" : ""));
            var nodes = root["nodes"]!.AsObject();
            foreach (var (node, experts) in nodes)
                Console.WriteLine($"{node}  {experts!.AsArray().Count,4} experts  {string.Join(" ", experts.AsArray().Select(e => e!.GetValue<string>()))}");
            return 0;
        });
        return c;
    }
}
