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

/// <summary>One item of a per-node batch: the rows routed to one expert. <c>Replica</c> marks rows for the node's
/// redundant replica of the expert (a child of its expert host) rather than the sharded primary.</summary>
public sealed record ExpertInput(int Expert, TensorPayload Rows, bool Replica = false);

/// <summary>Router → the expert host of one node: every expert input of one MoE layer that lives on that node,
/// in one message (one message per destination node per step, not one per token or per expert).</summary>
public sealed record DispatchTokens(long DispatchId, int Layer, IReadOnlyList<ExpertInput> Items) : ITensorMessage;

/// <summary>Expert host → router: the outputs for a <see cref="DispatchTokens"/>, one per item.</summary>
public sealed record TokensComputed(long DispatchId, int Layer, IReadOnlyList<ExpertInput> Items) : ITensorMessage;

/// <summary>Expert host → router, instead of <see cref="TokensComputed"/>: the items at these indices of the
/// <see cref="DispatchTokens"/> failed (an expert threw, the batch was malformed) or were not answered within twice the
/// expert timeout (the host then forgets the whole call, so its table never fills with calls nobody waits for).</summary>
public sealed record DispatchFailed(long DispatchId, int Layer, int[] Items, string Reason);
