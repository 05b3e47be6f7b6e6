namespace MoeCluster.Placement.Tests;

/// <summary>Small builders for experts, nodes, plans and load windows used across the tests.</summary>
internal static class Cluster
{
    public static List<ExpertId> Experts(int layers, int perLayer) =>
        [.. Enumerable.Range(0, layers).SelectMany(l => Enumerable.Range(0, perLayer).Select(e => new ExpertId(l, e)))];

    public static string Name(int i) => i < 26 ? $"node-{(char)('a' + i)}" : $"node-{i}";

    public static List<NodeCapacity> Nodes(int count, int slots) =>
        [.. Enumerable.Range(0, count).Select(i => new NodeCapacity(Name(i), slots))];

    /// <summary>A plan from "L0.E1" -> nodes pairs, primary first.</summary>
    public static PlacementPlan Plan(params (string Expert, string[] Nodes)[] replicas) =>
        new(replicas.ToDictionary(r => ExpertId.Parse(r.Expert), r => (IReadOnlyList<string>)r.Nodes));

    /// <summary>Tokens for experts 0..n-1 of one layer, over 200 steps ending at <paramref name="lastStep"/>.</summary>
    public static LoadWindow Window(int layer, long[] tokens, long lastStep = 199) =>
        new(tokens.Select((t, e) => (Id: new ExpertId(layer, e), t)).ToDictionary(x => x.Id, x => x.t), 200, lastStep);

    public static Dictionary<string, int> PrimaryCounts(PlacementPlan plan, IEnumerable<NodeCapacity> nodes) =>
        nodes.ToDictionary(n => n.Address, n => plan.PrimariesOn(n.Address).Count);

    /// <summary>Checks what every plan must satisfy: each expert once, at least one replica, no node over capacity.</summary>
    public static void AssertValid(PlacementPlan plan, IReadOnlyList<ExpertId> experts, IReadOnlyList<NodeCapacity> nodes)
    {
        Assert.Equal(experts.Order(), plan.Experts);
        var capacity = nodes.ToDictionary(n => n.Address, n => n.Slots);
        foreach (var (expert, replicas) in plan.Replicas)
        {
            Assert.NotEmpty(replicas);
            Assert.Equal(replicas.Count, replicas.Distinct().Count());
            Assert.All(replicas, n => Assert.True(capacity.ContainsKey(n), $"{expert} is on unknown node {n}"));
        }
        foreach (var node in nodes)
            Assert.True(plan.SlotsUsed(node.Address) <= node.Slots,
                $"{node.Address} holds {plan.SlotsUsed(node.Address)} replicas but has {node.Slots} slots");
    }
}
