using Akka.Cluster.Sharding;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>One shard per entity (shard id = entity id): the allocation strategy then places experts — and attention
/// layers — one by one, which is what expert placement needs. A model has at most a few thousand experts, well
/// within what the shard coordinator handles.</summary>
public sealed class EntityPerShardExtractor<TMessage>(Func<TMessage, string> entityId) : IMessageExtractor
{
    public string? EntityId(object message) => message is TMessage m ? entityId(m) : null;

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message);

    public string ShardId(string entityId, object? messageHint = null) => entityId;
}

public static class MessageExtractors
{
    /// <summary>Expert entities "L{layer}.E{expert}".</summary>
    public static IMessageExtractor Experts() => new EntityPerShardExtractor<IExpertMessage>(m => m.ExpertId);

    /// <summary>Attention entities "{gateway}@L{layer}".</summary>
    public static IMessageExtractor Attention() => new EntityPerShardExtractor<IAttentionMessage>(m => m.EntityId);
}
