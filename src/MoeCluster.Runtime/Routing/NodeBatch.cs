using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Routing;

/// <summary>One node's part of a MoE layer's step: the step rows (tokens) any of the node's experts needs, once each and
/// ascending, and each expert's share of them as indices into those rows — with the share's gate weights when the node
/// combines. A token whose k experts live on one node is sent once instead of k times.</summary>
internal sealed record NodeBatch(long[] Tokens, IReadOnlyList<ExpertRows> Items)
{
    /// <summary>The batch's rows of the step's normalised hidden states: [Tokens.Length, D], owned by the caller.</summary>
    public Tensor RowsOf(Tensor normed)
    {
        using var scope = NewDisposeScope();
        var rows = Tokens.Length == normed.shape[0] ? normed.clone() : normed.index_select(0, tensor(Tokens, ScalarType.Int64, normed.device));
        return rows.MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    /// <param name="groups">The step's tokens per expert.</param>
    /// <param name="byNode">For each node, the shares it computes: (group, share, start and count within the group's
    /// tokens, replica), in ascending group order.</param>
    /// <param name="gates">Include each share's gate weights (the node combines).</param>
    public static Dictionary<string, NodeBatch> Build(ExpertGroups groups,
        IReadOnlyDictionary<string, IReadOnlyList<(int Group, int Share, int Start, int Count, bool Replica)>> byNode, bool gates)
    {
        // Host copies of each group's token indices (and gate weights), made once per group.
        var tokens = new long[groups.Groups.Count][];
        var weights = new float[groups.Groups.Count][];
        long[] Tokens(int g) => tokens[g] ??= Host<long>(groups.Groups[g].TokenIndices);
        float[] Gates(int g) => weights[g] ??= Host<float>(groups.Groups[g].GateWeights.to(ScalarType.Float32));

        using var scope = NewDisposeScope();   // the host copies' temporaries
        var batches = new Dictionary<string, NodeBatch>();
        foreach (var (node, shares) in byNode)
        {
            var distinct = new SortedSet<long>();
            foreach (var s in shares)
                for (int i = 0; i < s.Count; i++) distinct.Add(Tokens(s.Group)[s.Start + i]);
            var rows = distinct.ToArray();
            var position = new Dictionary<long, int>(rows.Length);
            for (int i = 0; i < rows.Length; i++) position[rows[i]] = i;
            var items = shares.Select(s => new ExpertRows(
                groups.Groups[s.Group].Expert,
                Enumerable.Range(s.Start, s.Count).Select(i => position[Tokens(s.Group)[i]]).ToArray(),
                gates ? Gates(s.Group).AsSpan(s.Start, s.Count).ToArray() : null,
                s.Replica)).ToList();
            batches[node] = new NodeBatch(rows, items);
        }
        return batches;
    }

    static T[] Host<T>(Tensor t) where T : unmanaged
    {
        using var cpu = t.cpu().contiguous();
        return cpu.data<T>().ToArray();
    }
}
