using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>The tokens routed to one expert: their row indices in the step's batch and their gate weights.</summary>
public sealed record ExpertGroup(int Expert, Tensor TokenIndices, Tensor GateWeights);

/// <summary>Tokens grouped by expert, so each expert runs one matmul chain over all its tokens (no per-token loop).
/// Groups are in ascending expert order and tokens ascending within a group, so the combine order — and therefore
/// the floating-point sum — is the same wherever the experts run. Owns its tensors.</summary>
public sealed class ExpertGroups : IDisposable
{
    public IReadOnlyList<ExpertGroup> Groups { get; }
    /// <summary>Tokens routed to each expert this step (length E).</summary>
    public long[] TokensPerExpert { get; }

    ExpertGroups(IReadOnlyList<ExpertGroup> groups, long[] counts)
    {
        Groups = groups;
        TokensPerExpert = counts;
    }

    public static ExpertGroups From(Routing routing, int numExperts)
    {
        using var scope = NewDisposeScope();
        long k = routing.Experts.shape[1];
        var flat = routing.Experts.flatten();                                   // [T·k]
        var (_, order) = flat.sort(dim: 0, descending: false, stable: true);
        var counts = flat.bincount(null, numExperts).to(ScalarType.Int64).cpu().data<long>().ToArray();
        var tokens = order.div(k, rounding_mode: RoundingMode.floor);
        var weights = routing.Weights.flatten().index_select(0, order);
        var groups = new List<ExpertGroup>();
        long offset = 0;
        for (int e = 0; e < numExperts; e++)
        {
            if (counts[e] == 0) continue;
            // Contiguous copies, detached: the groups own them and may outlive this scope (sent to other actors).
            groups.Add(new ExpertGroup(e,
                tokens.narrow(0, offset, counts[e]).contiguous().DetachFromDisposeScope(),
                weights.narrow(0, offset, counts[e]).contiguous().DetachFromDisposeScope()));
            offset += counts[e];
        }
        return new ExpertGroups(groups, counts);
    }

    public void Dispose()
    {
        foreach (var g in Groups) { g.TokenIndices.Dispose(); g.GateWeights.Dispose(); }
    }
}
