namespace MoeCluster.Placement;

/// <summary>A node with the <c>expert</c> role and the most replicas (expert slots) it may hold.</summary>
public sealed record NodeCapacity
{
    /// <summary>Creates a node entry.</summary>
    /// <exception cref="ArgumentException"><paramref name="address"/> is empty or <paramref name="slots"/> is negative.</exception>
    public NodeCapacity(string address, int slots)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(address);
        if (slots < 0)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"Node '{address}' has a negative slot count ({slots}); give 0 or more expert slots.");
        Address = address;
        Slots = slots;
    }

    /// <summary>The node's cluster address, used as its identity in plans.</summary>
    public string Address { get; }

    /// <summary>The most replicas (primaries and redundant copies together) this node may hold.</summary>
    public int Slots { get; }

    /// <summary>Checks a node list has no duplicate address and returns capacities by address.</summary>
    internal static Dictionary<string, int> ByAddress(IReadOnlyList<NodeCapacity> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        var byAddress = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            ArgumentNullException.ThrowIfNull(node, nameof(nodes));
            if (!byAddress.TryAdd(node.Address, node.Slots))
                throw new PlacementException($"Node '{node.Address}' is listed twice; each node address must appear once.");
        }
        return byAddress;
    }
}
