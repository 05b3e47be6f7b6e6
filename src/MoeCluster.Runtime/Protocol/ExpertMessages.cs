using MoeCluster.Model.Layers;

namespace MoeCluster.Runtime.Protocol;

/// <summary>A logical expert's sharding entity id, "L{layer}.E{expert}" (one shard per expert, so placement is per expert).</summary>
public readonly record struct ExpertKey(int Layer, int Expert)
{
    public string EntityId => $"L{Layer}.E{Expert}";
    public override string ToString() => EntityId;

    public static ExpertKey Parse(string id)
    {
        var dot = id.IndexOf(".E", StringComparison.Ordinal);
        if (!id.StartsWith('L') || dot < 0) throw new FormatException($"'{id}' is not an expert id (L<layer>.E<expert>)");
        return new ExpertKey(int.Parse(id.AsSpan(1, dot - 1)), int.Parse(id.AsSpan(dot + 2)));
    }
}

/// <summary>Messages addressed to one expert entity through the expert shard region.</summary>
public interface IExpertMessage { string ExpertId { get; } }

/// <summary>Starts (loads) the expert if it is not running; answered with <see cref="ExpertStarted"/>.</summary>
public sealed record StartExpert(string ExpertId) : IExpertMessage;
public sealed record ExpertStarted(string ExpertId, string Node, long ParameterBytes);

/// <summary>Run expert <c>ExpertId</c> on the rows of Input [n, D]; answered with <see cref="ExpertComputed"/>.</summary>
public sealed record ComputeExpert(string ExpertId, long CorrelationId, TensorPayload Input) : IExpertMessage, ITensorMessage;
public sealed record ExpertComputed(string ExpertId, long CorrelationId, TensorPayload Output) : ITensorMessage;

/// <summary>The expert threw computing <see cref="ComputeExpert"/> (out of memory, a malformed input); sent at once
/// instead of <see cref="ExpertComputed"/>. The expert keeps running.</summary>
public sealed record ExpertFailed(string ExpertId, long CorrelationId, string Reason);

/// <summary>One expert's output for a per-node batch: its rows [n, D], in the order of the rows it was given.
/// <c>Replica</c> as in <see cref="ExpertRows"/>.</summary>
public sealed record ExpertInput(int Expert, TensorPayload Rows, bool Replica = false);

/// <summary>One item of a per-node batch: the rows routed to one expert, as indices into the batch's
/// <see cref="DispatchTokens.Rows"/> (ascending), and, when the node combines, each row's gate weight for this expert.
/// <c>Replica</c> marks rows for the node's redundant replica of the expert (a child of its expert host) rather than the
/// sharded primary.</summary>
public sealed record ExpertRows(int Expert, int[] Rows, float[]? Gates = null, bool Replica = false);

/// <summary>Router → the expert host of one node: every expert input of one MoE layer that lives on that node, in one
/// message (one per destination node per step). <c>Rows</c> [u, D] holds each token routed to the node once, however
/// many of the node's experts it chose, so a token whose experts share a node costs one row, not k (DeepSpeed-MoE
/// groups traffic per node). With <c>Combine</c>, every item carries its gate weights and the host answers with one
/// row per token, Σ gate × expert output over the node's experts in item (ascending expert) order.</summary>
public sealed record DispatchTokens(long DispatchId, int Layer, TensorPayload Rows, IReadOnlyList<ExpertRows> Items, bool Combine = false) : ITensorMessage;

/// <summary>Expert host → router: for a combining <see cref="DispatchTokens"/>, <c>Combined</c> [u, D] row for row
/// with its <c>Rows</c> and no items; otherwise the outputs, one per item.</summary>
public sealed record TokensComputed(long DispatchId, int Layer, IReadOnlyList<ExpertInput> Items, TensorPayload? Combined = null) : ITensorMessage;

/// <summary>Router → the expert host of a node: experts of <c>Layer</c> that the look-ahead (the layer's gate applied to
/// the hidden state one layer early, as Pre-gated MoE does) expects; a host with a resident set starts loading those it
/// has released. Never answered; it changes no output.</summary>
public sealed record PrefetchExperts(int Layer, int[] Experts);

/// <summary>Expert host → router, instead of <see cref="TokensComputed"/>: the items at these indices of the
/// <see cref="DispatchTokens"/> failed (an expert threw, the batch was malformed) or were not answered within twice the
/// expert timeout (the host then forgets the whole call, so its table never fills with calls nobody waits for).</summary>
public sealed record DispatchFailed(long DispatchId, int Layer, int[] Items, string Reason);
