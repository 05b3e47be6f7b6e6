namespace MoeCluster.Placement;

/// <summary>How many primaries each node should hold: water-filling over capacities.</summary>
internal static class FairShare
{
    /// <summary>
    /// Spreads <paramref name="count"/> primaries so targets differ by at most 1 except where a node's capacity
    /// caps it. The +1 remainders go to nodes already holding more (<paramref name="held"/>), so a plan that is
    /// already even keeps its targets and nothing moves; ties go by address.
    /// </summary>
    public static Dictionary<string, int> Targets(int count, IReadOnlyDictionary<string, int> capacities, Func<string, int> held)
    {
        var targets = new Dictionary<string, int>(StringComparer.Ordinal);
        var byCapacity = capacities.OrderBy(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var remaining = count;
        for (var i = 0; i < byCapacity.Count; i++)
        {
            var left = byCapacity.Count - i;
            var share = remaining / left;
            if (byCapacity[i].Value <= share)
            {
                // A node too small for the even share is filled; the rest share what is left.
                targets[byCapacity[i].Key] = byCapacity[i].Value;
                remaining -= byCapacity[i].Value;
                continue;
            }
            // Every node from here has capacity >= share + 1, so each takes share and some take share + 1.
            var rest = byCapacity.Skip(i).Select(kv => kv.Key)
                .OrderByDescending(held).ThenBy(a => a, StringComparer.Ordinal).ToList();
            var extra = remaining - share * left;
            for (var j = 0; j < rest.Count; j++)
                targets[rest[j]] = share + (j < extra ? 1 : 0);
            remaining = 0;
            break;
        }
        return targets;
    }
}
