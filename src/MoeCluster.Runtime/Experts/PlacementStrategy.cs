using MoeCluster.Model;
using MoeCluster.Placement;

namespace MoeCluster.Runtime.Experts;

/// <summary>How expert primaries are placed (<c>--placement</c>): <c>even</c>, the allocation strategy's own rule (fewest
/// experts, then fewest of the same layer), or <c>coactivation</c>, <see cref="CoactivationPlacement"/> over a routing
/// profile (<c>--routing-profile FILE</c>, written by <c>moecluster routing-stats</c>), so that experts the same tokens
/// choose share a node. Every expert node must be started with the same setting: the shard coordinator (on the oldest
/// expert node) places with its own.</summary>
/// <param name="Experts">Every routed expert of the model (the co-activation plan places them all).</param>
/// <param name="LoadSlack">How far above an even share of a layer's tokens a node may go (<see cref="CoactivationPlacement"/>).</param>
public sealed record PlacementStrategy(string Name, RoutingSnapshot? Profile = null, string? ProfilePath = null, IReadOnlyList<ExpertId>? Experts = null, double LoadSlack = 0.25)
{
    public const string Even = "even";
    public const string Coactivation = "coactivation";

    public static PlacementStrategy EvenPlacement { get; } = new(Even);

    /// <summary>The strategy <paramref name="options"/> ask for, with its profile read and checked against the model.</summary>
    /// <exception cref="ArgumentException">An unknown strategy, a missing or unreadable profile, or one taken on another model.</exception>
    public static PlacementStrategy From(RuntimeOptions options, ModelConfig config)
    {
        switch (options.Placement)
        {
            case Even: return EvenPlacement;
            case Coactivation: break;
            default: throw new ArgumentException($"--placement: '{options.Placement}' is not a placement strategy; use {Even} or {Coactivation}");
        }
        var path = options.RoutingProfile
            ?? throw new ArgumentException("--placement coactivation needs --routing-profile FILE: write one with `moecluster routing-stats --model DIR --data TEXT --output FILE`");
        var profile = Routing.RoutingProfileFile.Read(path, config, "co-activation placement");
        var experts = config.MoeLayers.SelectMany(l => Enumerable.Range(0, config.NumExperts).Select(e => new ExpertId(l, e))).ToList();
        if (!(options.PlacementLoadSlack >= 0) || double.IsInfinity(options.PlacementLoadSlack))
            throw new ArgumentException($"--placement-load-slack: {options.PlacementLoadSlack} is not a share ≥ 0 (0.25 = a node may take 25 % more than an even share of a layer)");
        return new PlacementStrategy(Coactivation, profile, path, experts, options.PlacementLoadSlack);
    }

    /// <summary>Share of the profile's co-activated pairs whose experts share a node under <paramref name="placement"/>
    /// (entity id → node), or null without a profile.</summary>
    public double? ColocatedShare(IReadOnlyDictionary<string, string> placement)
    {
        if (Profile is null) return null;
        var plan = placement.Where(p => ExpertId.TryParse(p.Key, out _))
            .ToDictionary(p => ExpertId.Parse(p.Key), p => (IReadOnlyList<string>)[p.Value]);
        return plan.Count == 0 ? null : CoactivationPlacement.ColocatedShare(new PlacementPlan(plan), Profile);
    }
}
