using Akka.Cluster.Sharding;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>One shard per expert (shard id = entity id): the allocation strategy then places experts one by one,
/// which is what expert placement needs. A model has at most a few thousand experts, well within what the
/// coordinator handles.</summary>
public sealed class ExpertMessageExtractor : IMessageExtractor
{
    public string? EntityId(object message) => message switch
    {
        IExpertMessage m => m.ExpertId,
        _ => null,
    };

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message);

    public string ShardId(string entityId, object? messageHint = null) => entityId;
}

/// <summary>Attention entities, also one per shard ("{gateway}@L{layer}").</summary>
public sealed class AttentionMessageExtractor : IMessageExtractor
{
    public string? EntityId(object message) => message switch
    {
        IAttentionMessage m => m.EntityId,
        _ => null,
    };

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message);

    public string ShardId(string entityId, object? messageHint = null) => entityId;
}
