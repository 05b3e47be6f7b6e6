namespace MoeCluster.Placement;

/// <summary>
/// A plan being edited by <see cref="ReplicationPlanner"/>, with the tokens each node receives per layer when routers
/// split every expert's tokens evenly over its replicas. Mutable; lives for one planning call.
/// </summary>
internal sealed class ReplicaLoad
{
    private readonly Dictionary<ExpertId, List<string>> _replicas;
    private readonly LoadWindow _load;
    private readonly Dictionary<string, int> _capacities;
    private readonly Dictionary<string, int> _used;
    private readonly Dictionary<(string Node, int Layer), double> _nodeLayerTokens = [];
    private readonly Dictionary<string, double> _nodeTokens;
    private readonly Dictionary<int, (long Tokens, int Experts)> _layers;

    public ReplicaLoad(PlacementPlan plan, LoadWindow load, Dictionary<string, int> capacities)
    {
        _load = load;
        _capacities = capacities;
        _replicas = plan.Replicas.ToDictionary(kv => kv.Key, kv => kv.Value.ToList());
        _used = capacities.Keys.ToDictionary(n => n, _ => 0, StringComparer.Ordinal);
        _nodeTokens = capacities.Keys.ToDictionary(n => n, _ => 0.0, StringComparer.Ordinal);
        _layers = plan.Experts.GroupBy(e => e.Layer)
            .ToDictionary(g => g.Key, g => (g.Sum(load.TokensOf), g.Count()));
        foreach (var (expert, nodes) in _replicas)
        {
            foreach (var node in nodes)
                _used[node]++;
            Spread(expert, nodes, +1);
        }
    }

    public int Count(ExpertId expert) => _replicas[expert].Count;

    public long LayerTokens(int layer) => _layers[layer].Tokens;

    /// <summary>τ: the layer's tokens ÷ its logical experts.</summary>
    public double TargetPerReplica(int layer) => _layers[layer].Tokens / (double)_layers[layer].Experts;

    /// <summary>The node that should take a new replica of <paramref name="expert"/>, or null when none can.</summary>
    public string? BestNodeFor(ExpertId expert)
    {
        var holders = _replicas[expert];
        return _capacities.Keys
            .Where(n => _used[n] < _capacities[n] && !holders.Contains(n, StringComparer.Ordinal))
            .OrderBy(n => _nodeLayerTokens.GetValueOrDefault((n, expert.Layer)))
            .ThenBy(n => _nodeTokens[n])
            .ThenBy(n => _used[n])
            .ThenBy(n => n, StringComparer.Ordinal)
            .FirstOrDefault();
    }

    public void Add(ExpertId expert, string node)
    {
        var nodes = _replicas[expert];
        Spread(expert, nodes, -1);
        nodes.Add(node);
        _used[node]++;
        Spread(expert, nodes, +1);
    }

    /// <summary>Retires the redundant replica on the busiest node (never the primary) and returns that node.</summary>
    public string Retire(ExpertId expert)
    {
        var nodes = _replicas[expert];
        var node = nodes.Skip(1)
            .OrderByDescending(n => _nodeLayerTokens.GetValueOrDefault((n, expert.Layer)))
            .ThenByDescending(n => _nodeTokens[n])
            .ThenBy(n => n, StringComparer.Ordinal)
            .First();
        Spread(expert, nodes, -1);
        nodes.Remove(node);
        _used[node]--;
        Spread(expert, nodes, +1);
        return node;
    }

    public PlacementPlan ToPlan() =>
        new(_replicas.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value));

    private void Spread(ExpertId expert, List<string> nodes, int sign)
    {
        var share = sign * _load.TokensOf(expert) / (double)nodes.Count;
        foreach (var node in nodes)
        {
            _nodeLayerTokens[(node, expert.Layer)] = _nodeLayerTokens.GetValueOrDefault((node, expert.Layer)) + share;
            _nodeTokens[node] += share;
        }
    }
}
