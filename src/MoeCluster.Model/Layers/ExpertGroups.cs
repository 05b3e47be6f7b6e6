using MoeCluster.Model.Kernels;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>The tokens routed to one expert: their row indices in the step's batch and their gate weights
/// ([n] int64 and [n] in the compute dtype). A group routed on the host (<see cref="HostRouting"/>) also holds both on
/// the host (<see cref="Tokens"/>, <see cref="Weights"/>) and makes the tensors only when something asks for them (the
/// cluster's dispatch, the TorchSharp combine), so the single process's decode step builds none. Owns its tensors.</summary>
public sealed class ExpertGroup : IDisposable
{
    Tensor? tokenIndices, gateWeights;
    readonly ScalarType dtype;

    public int Expert { get; }

    /// <summary>Tokens (rows of the step's batch), ascending; null for a group routed by TorchSharp.</summary>
    public long[]? Tokens { get; }

    /// <summary>Gate weights of <see cref="Tokens"/>, each exactly a value of the compute dtype; null likewise.</summary>
    public float[]? Weights { get; }

    public ExpertGroup(int expert, Tensor tokenIndices, Tensor gateWeights)
    {
        Expert = expert;
        this.tokenIndices = tokenIndices;
        this.gateWeights = gateWeights;
        dtype = gateWeights.dtype;
    }

    public ExpertGroup(int expert, long[] tokens, float[] weights, ScalarType dtype)
    {
        Expert = expert;
        Tokens = tokens;
        Weights = weights;
        this.dtype = dtype;
    }

    /// <summary>Tokens of this group.</summary>
    public long Count => Tokens?.Length ?? tokenIndices!.size(0);

    /// <summary>[n] int64, detached: the group owns it and may outlive any scope (sent to other actors).</summary>
    public Tensor TokenIndices => tokenIndices ??= tensor(Tokens!).DetachFromDisposeScope();

    /// <summary>[n] in the compute dtype (exact: the host weights are values of that dtype), detached likewise.</summary>
    public Tensor GateWeights
    {
        get
        {
            if (gateWeights is not null) return gateWeights;
            using var scope = NewDisposeScope();
            return gateWeights = tensor(Weights!).to(dtype).MoveToOuterDisposeScope().DetachFromDisposeScope();
        }
    }

    /// <summary>This group's rows of x [T, D]: [n, D] (the caller owns the result). A host group copies the rows on the
    /// host, or aliases x when it holds every token; otherwise index_select (which keeps autograd for training).</summary>
    public Tensor Rows(Tensor x)
    {
        if (Tokens is null || x.requires_grad) return x.index_select(0, TokenIndices);
        if (Tokens.Length == x.size(0)) return x.alias();   // ascending and distinct: every row, in order
        return ExpertRows.Gather(x, Tokens);
    }

    public void Dispose() { tokenIndices?.Dispose(); gateWeights?.Dispose(); }
}

/// <summary>Tokens grouped by expert, so each expert runs one matmul chain over all its tokens (no per-token loop).
/// Groups are in ascending expert order and tokens ascending within a group, so the combine order — and therefore
/// the floating-point sum — is the same wherever the experts run. Owns its tensors.</summary>
public sealed class ExpertGroups : IDisposable
{
    public IReadOnlyList<ExpertGroup> Groups { get; }
    /// <summary>Tokens routed to each expert this step (length E).</summary>
    public long[] TokensPerExpert { get; }

    /// <summary>Whether every group holds its tokens and weights on the host (routed by <see cref="HostRouting"/>).</summary>
    public bool OnHost => Groups.All(g => g.Tokens is not null);

    public ExpertGroups(IReadOnlyList<ExpertGroup> groups, long[] counts)
    {
        Groups = groups;
        TokensPerExpert = counts;
    }

    /// <summary>The TorchSharp grouping: a stable sort of the [T·k] choices by expert, one host copy of the counts.</summary>
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
        foreach (var g in Groups) g.Dispose();
    }
}
