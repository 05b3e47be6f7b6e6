using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;

namespace MoeCluster.Runtime.Protocol;

/// <summary>Attention entities hold one layer's attention weights and the KV cache of one gateway's sequence slots.
/// Entity id "{gateway}@L{layer}", so each gateway's batch has caches of its own.</summary>
public interface IAttentionMessage { string EntityId { get; } }

public static class AttentionEntity
{
    public static string Id(string gateway, int layer) => $"{gateway}@L{layer}";
    public static int Layer(string entityId) => int.Parse(entityId.AsSpan(entityId.LastIndexOf("@L", StringComparison.Ordinal) + 2));
}

/// <summary>Input [T, D] of one layer for one step; answered with <see cref="AttentionComputed"/> carrying
/// Residual = x + Attn(norm₁(x)) and Normed = norm₂(Residual), or <see cref="AttentionCacheMissing"/>. The
/// <see cref="Copies"/> (cached prompt prefixes forked into a new sequence's slot) are made first.</summary>
public sealed record AttentionStep(string EntityId, long StepId, StepLayout Layout, TensorPayload Input) : IAttentionMessage, ITensorMessage
{
    public IReadOnlyList<KvCopy> Copies { get; init; } = [];
}
public sealed record AttentionComputed(long StepId, int Layer, TensorPayload Residual, TensorPayload Normed) : ITensorMessage;

/// <summary>The step needs cached positions this actor does not hold (it restarted or moved), to attend over or to copy
/// from: the gateway re-prefills the sequences in these slots and forgets the prefixes it thought were cached.</summary>
public sealed record AttentionCacheMissing(long StepId, int Layer, IReadOnlyList<int> Slots);

/// <summary>Starts the attention entity (loads its weights, allocates a KV cache of Slots × Context positions);
/// answered with AttentionStarted. Idempotent: a running entity keeps its cache.</summary>
public sealed record StartAttention(string EntityId, int Slots, int Context) : IAttentionMessage;
public sealed record AttentionStarted(string EntityId, string Node, long KvCacheBytes);

/// <summary>The attention computation threw (out of memory on a long prefill, a bug) or the step was malformed (a slot
/// or position outside the cache, rows that do not match the layout). Sent at once instead of a result; the entity keeps
/// running with its KV cache (a retry rewrites the step's positions: KV-cache writes are idempotent).</summary>
public sealed record AttentionFailed(long StepId, int Layer, string Reason);
