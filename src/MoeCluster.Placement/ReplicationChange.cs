namespace MoeCluster.Placement;

/// <summary>Whether a redundant replica is loaded or unloaded.</summary>
public enum ChangeKind
{
    /// <summary>Load a new redundant replica on the node.</summary>
    Add,

    /// <summary>Unload a redundant replica from the node.</summary>
    Retire,
}

/// <summary>
/// One replica added to or retired from <paramref name="Node"/>, with a sentence giving the numbers behind it, e.g.
/// "L0.E3 received 52% of layer 0 tokens (4120 of 7900) over 200 steps, 4.2× the per-replica target of 988; 1 replica -> 2 on node-b".
/// </summary>
public sealed record ReplicationChange(ExpertId Expert, ChangeKind Kind, string Node, string Reason);
