using MoeCluster.Model;
using MoeCluster.Placement;
using MoeCluster.Runtime.Routing;

namespace MoeCluster.Runtime.Experts;

/// <summary>Which routed experts this node holds in int8 (<c>--int8-experts none|cold|all</c>, <c>--int8-budget</c>):
/// <see cref="ExpertPrecision"/> over the routing profile's load, never a super expert (found from the profile's
/// activation maxima, <see cref="SuperExperts"/>), never the router, a shared expert, a dense MLP or attention.</summary>
public sealed record ExpertPrecisionPlan(string Mode, IReadOnlySet<ExpertId> Int8, IReadOnlySet<ExpertId> SuperExperts)
{
    public static ExpertPrecisionPlan None { get; } = new("none", new HashSet<ExpertId>(), new HashSet<ExpertId>());

    /// <exception cref="ArgumentException">An unknown mode, a budget outside [0, 1], or no usable profile.</exception>
    public static ExpertPrecisionPlan From(RuntimeOptions options, ModelConfig config)
    {
        if (options.Int8Experts == "none") return None;
        if (options.Int8Experts is not ("cold" or "all"))
            throw new ArgumentException($"--int8-experts: '{options.Int8Experts}' is not a mode; use none, cold or all");
        var path = options.RoutingProfile
            ?? throw new ArgumentException($"--int8-experts {options.Int8Experts} needs --routing-profile FILE (expert load, and activation maxima to keep super experts in full precision): write one with `moecluster routing-stats --model DIR --data TEXT --output FILE`");
        var profile = RoutingProfileFile.Read(path, config, "int8 experts");
        if (profile.Layers.Any(l => l.MaxOutput is null))
            throw new ArgumentException($"--routing-profile {path} has no activation maxima (max_output), so super experts cannot be told apart; write it with `moecluster routing-stats`, not from a gateway's window");
        try
        {
            return new ExpertPrecisionPlan(options.Int8Experts, ExpertPrecision.Int8Experts(profile, options.Int8Experts, options.Int8Budget), Placement.SuperExperts.Detect(profile));
        }
        catch (ArgumentException e) { throw new ArgumentException($"--int8-budget: {e.Message}", e); }
    }
}
