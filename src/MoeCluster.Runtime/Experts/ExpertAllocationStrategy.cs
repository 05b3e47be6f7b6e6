using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using MoeCluster.Placement;

namespace MoeCluster.Runtime.Experts;

/// <summary>Places shards (one expert, or one attention layer, per shard) on the node that has the fewest, within its
/// capacity (role <c>expert-slots-N</c>), preferring the node with the fewest shards of the same layer so one layer's
/// traffic fans out over many nodes. Deterministic (ties by address) and stable: a shard never moves unless a node has
/// two or more shards more than another (a join), and at most a few move per rebalance round, so placement does not
/// flap. Attention shards are never rebalanced: moving one throws its KV cache away.
/// Before a rebalance round hands experts off, every gateway is told which experts move and pauses expert work until
/// they answer from their new homes (a region drops what it buffered for a shard it is handing off).
/// With a co-activation <paramref name="placement"/>, an expert goes to the node the co-activation plan for the current
/// nodes gives it (<see cref="CoactivationPlacement"/>), and a rebalance round moves experts that are not where the plan
/// for the current nodes puts them (a join or a leave changes the plan), a few at a time.</summary>
public sealed class ExpertAllocationStrategy(bool rebalance, int maxMovesPerRound = 4, string? role = null, PlacementStrategy? placement = null)
    : IShardAllocationStrategy, IActorSystemDependentAllocationStrategy
{
    /// <summary>The last co-activation plan and the nodes it was made for.</summary>
    (string Nodes, PlacementPlan Plan)? plan;

    ActorSystem? system;
    Cluster? cluster;

    public void Start(ActorSystem system)
    {
        this.system = system;
        cluster = Cluster.Get(system);
    }

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> current)
    {
        var candidates = Usable(current).ToList();
        if (candidates.Count == 0) return Task.FromResult(requester);
        // First placement only: nodes that came up together register their regions one by one; wait (the requester
        // is refused and asks again after retry-interval) until every reachable member of the role has, rather than
        // put every shard on the first. Joining members count too: this node's view of their Up may lag the
        // gateway's. Once anything is placed this never waits, so survivors of a crash are not held.
        if (role is not null && current.Values.All(s => s.Count == 0) && MembersOfRole(role) > candidates.Count)
            return Task.FromResult(requester);
        if (PlannedNode(shardId, candidates) is { } planned && (planned.Capacity == 0 || planned.Shards.Count < planned.Capacity))
            return Task.FromResult(planned.Region);
        int layer = LayerOf(shardId);
        var withRoom = candidates.Where(c => c.Capacity == 0 || c.Shards.Count < c.Capacity).ToList();
        var pool = withRoom.Count > 0 ? withRoom : candidates;   // over capacity beats refusing to serve
        var best = pool
            .OrderBy(c => c.Shards.Count)
            .ThenBy(c => c.Shards.Count(s => LayerOf(s) == layer))
            .ThenBy(c => c.Address, StringComparer.Ordinal)
            .First();
        return Task.FromResult(best.Region);
    }

    public async Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> current, IImmutableSet<string> inProgress)
    {
        var moves = Plan(current, inProgress);
        if (moves.Count > 0 && system is not null)
            await PlacementWatcherActor.AnnounceMovesAsync(system, moves, TimeSpan.FromSeconds(10));
        return moves.Keys.ToImmutableHashSet();
    }

    /// <summary>The candidate the co-activation plan for <paramref name="candidates"/> puts an expert shard on; null
    /// without a co-activation placement or for a shard that is not an expert.</summary>
    Candidate? PlannedNode(string shardId, IReadOnlyList<Candidate> candidates)
    {
        if (placement is not { Profile: { } profile, Experts: { } experts } || !ExpertId.TryParse(shardId, out var expert) || !experts.Contains(expert)) return null;
        var key = string.Join(",", candidates.Select(c => $"{c.Address}={c.Capacity}").Order(StringComparer.Ordinal));
        if (plan?.Nodes != key)
        {
            // Unlimited slots count as room for every expert.
            var nodes = candidates.Select(c => new NodeCapacity(c.Address, c.Capacity == 0 ? experts.Count : c.Capacity)).ToList();
            try { plan = (key, CoactivationPlacement.Place(experts, nodes, profile, placement.LoadSlack)); }
            catch (PlacementException e)
            {
                system?.Log.Warning("co-activation placement impossible on these nodes ({0}); placing evenly", e.Message);
                return null;
            }
        }
        var node = plan.Value.Plan.NodeOf(expert);
        return candidates.FirstOrDefault(c => c.Address == node);
    }

    /// <summary>Shards to move this round → the node each leaves.</summary>
    IReadOnlyDictionary<string, string> Plan(IImmutableDictionary<IActorRef, IImmutableList<string>> current, IImmutableSet<string> inProgress)
    {
        var none = new Dictionary<string, string>();
        if (!rebalance || inProgress.Count > 0) return none;
        var regions = Usable(current).ToList();
        if (regions.Count < 2) return none;
        if (placement?.Profile is not null)
        {   // Off-plan experts move (their next allocation follows the plan), a few per round.
            return regions.SelectMany(r => r.Shards.Where(s => PlannedNode(s, regions) is { } p && p.Address != r.Address).Select(s => (Shard: s, From: r.Address)))
                .OrderBy(x => x.Shard, StringComparer.Ordinal).Take(maxMovesPerRound)
                .ToDictionary(x => x.Shard, x => x.From);
        }
        var moves = new Dictionary<string, string>();
        var counts = regions.ToDictionary(r => r.Region, r => r.Shards.Count);
        for (int i = 0; i < maxMovesPerRound; i++)
        {
            var most = regions.OrderByDescending(r => counts[r.Region]).ThenBy(r => r.Address, StringComparer.Ordinal).First();
            var least = regions.Where(r => r.Capacity == 0 || counts[r.Region] < r.Capacity)
                .OrderBy(r => counts[r.Region]).ThenBy(r => r.Address, StringComparer.Ordinal).FirstOrDefault();
            if (least is null || counts[most.Region] - counts[least.Region] < 2) break;
            // Move the shard of the layer this node holds most of, so layers stay spread.
            var shard = most.Shards.Where(s => !moves.ContainsKey(s))
                .GroupBy(LayerOf).OrderByDescending(g => g.Count()).ThenBy(g => g.Key)
                .Select(g => g.OrderBy(s => s, StringComparer.Ordinal).Last()).FirstOrDefault();
            if (shard is null) break;
            moves[shard] = most.Address;
            counts[most.Region]--;
            counts[least.Region]++;
        }
        return moves;
    }

    int MembersOfRole(string r)
    {
        var state = cluster!.State;
        return state.Members.Count(m => m.HasRole(r) && m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up && !state.Unreachable.Contains(m));
    }

    sealed record Candidate(IActorRef Region, string Address, int Capacity, IImmutableList<string> Shards);

    IEnumerable<Candidate> Usable(IImmutableDictionary<IActorRef, IImmutableList<string>> current)
    {
        var state = cluster?.State;
        foreach (var (region, shards) in current)
        {
            var address = region.Path.Address.HasGlobalScope ? region.Path.Address : cluster?.SelfAddress ?? region.Path.Address;
            var member = state?.Members.FirstOrDefault(m => m.Address == address);
            // A leaving or unreachable node takes no new shards.
            if (member is not null && (member.Status != MemberStatus.Up || state!.Unreachable.Contains(member))) continue;
            yield return new Candidate(region, address.ToString(), member is null ? 0 : CapacityOf(member), shards);
        }
    }

    static int CapacityOf(Member m)
    {
        var role = m.Roles.FirstOrDefault(r => r.StartsWith(NodeRoles.ExpertSlotsPrefix, StringComparison.Ordinal));
        return role is not null && int.TryParse(role.AsSpan(NodeRoles.ExpertSlotsPrefix.Length), out var n) ? n : 0;
    }

    /// <summary>Layer of "L3.E5" or "gw@L3"; -1 when neither.</summary>
    public static int LayerOf(string shardId)
    {
        int at = shardId.LastIndexOf('L');
        if (at < 0) return -1;
        int end = at + 1;
        while (end < shardId.Length && char.IsDigit(shardId[end])) end++;
        return end > at + 1 ? int.Parse(shardId.AsSpan(at + 1, end - at - 1)) : -1;
    }
}
