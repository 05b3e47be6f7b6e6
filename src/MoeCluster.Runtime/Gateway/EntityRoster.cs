using Akka.Cluster;
using MoeCluster.Model;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Gateway;

/// <summary>Which of a gateway's entities — its attention layers and every expert — have answered their Start, and
/// on which node, so that a removed node's entities can be started again; and whether enough expert nodes are up to
/// place the experts at all (<see cref="RuntimeOptions.MinExpertNodes"/>).</summary>
internal sealed class EntityRoster(ModelConfig config, string gatewayName, int minExpertNodes)
{
    readonly HashSet<string> attention = new(), experts = new();
    /// <summary>Entity id → the node that answered its Start.</summary>
    readonly Dictionary<string, string> homes = new();
    readonly Dictionary<string, long> kvCacheBytes = new();
    /// <summary>Expert members seen up, from the membership events (Cluster.State lags the events we receive).</summary>
    readonly HashSet<UniqueAddress> upExperts = new();

    public int Layers => config.NumLayers;
    public int ExpertCount => config.MoeLayers.Count() * config.NumExperts;
    public int AttentionStarted => attention.Count;
    public int ExpertsStarted => experts.Count;
    public int UpExpertNodes => upExperts.Count;
    public bool AllStarted => attention.Count == Layers && experts.Count == ExpertCount;
    /// <summary>KV cache allocated by the attention entities that answered (all layers, all slots).</summary>
    public long KvCacheBytes => kvCacheBytes.Values.Sum();
    /// <summary>Latched once the expert nodes were up together: only then are experts first started, so the first
    /// expert node does not receive every expert only to hand most off.</summary>
    public bool Quorum { get; private set; }

    public string AttentionId(int layer) => AttentionEntity.Id(gatewayName, layer);

    public void Started(AttentionStarted m)
    {
        attention.Add(m.EntityId);
        homes[m.EntityId] = m.Node;
        kvCacheBytes[m.EntityId] = m.KvCacheBytes;
    }

    public void Started(ExpertStarted m)
    {
        experts.Add(m.ExpertId);
        homes[m.ExpertId] = m.Node;
    }

    /// <summary>True when this member completes the quorum.</summary>
    public bool MemberUp(Member m)
    {
        if (m.HasRole(NodeRoles.Expert)) upExperts.Add(m.UniqueAddress);
        if (Quorum || upExperts.Count < Math.Max(1, minExpertNodes)) return false;
        return Quorum = true;
    }

    public IEnumerable<int> AttentionToStart() => Enumerable.Range(0, Layers).Where(l => !attention.Contains(AttentionId(l)));

    public IEnumerable<string> ExpertsToStart() => !Quorum ? [] :
        config.MoeLayers.SelectMany(l => Enumerable.Range(0, config.NumExperts).Select(e => new ExpertKey(l, e).EntityId)).Where(id => !experts.Contains(id));

    /// <summary>A node is gone: every entity that lived there, and every entity of the node's roles (rebalancing
    /// moves entities without telling us), must confirm where it lives now. Returns how many.</summary>
    public int Forget(Member member)
    {
        upExperts.Remove(member.UniqueAddress);
        var node = member.Address.ToString();
        var ask = homes.Where(h => h.Value == node).Select(h => h.Key).ToHashSet();
        if (member.HasRole(NodeRoles.Expert)) ask.UnionWith(experts);
        if (member.HasRole(NodeRoles.Attention)) ask.UnionWith(attention);
        foreach (var id in ask) { homes.Remove(id); experts.Remove(id); attention.Remove(id); kvCacheBytes.Remove(id); }
        return ask.Count;
    }
}
