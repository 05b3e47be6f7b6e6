using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Placement;

namespace MoeCluster.Runtime.Routing;

/// <summary>Router → its gateway's statistics actor (local): what the layer's gate chose for the rows of one step.</summary>
public sealed record LayerRouted(long StepId, LayerRouting Routing);

/// <summary>Gateway → its statistics actor (local): step <c>StepId</c> finished; the sequence behind each segment, so
/// the routings of its layers are recorded together (a step that was abandoned and retried never finishes under the
/// same id, so its routings are dropped).</summary>
public sealed record StepFinished(long StepId, StepLayout Layout, IReadOnlyList<string> SegmentRequests)
{
    public static StepFinished Of(long stepId, StepPlan plan) => new(stepId, plan.Layout, plan.SegmentRequests);
}

/// <summary>Asks a gateway's statistics actor for its window; answered with <see cref="RoutingSnapshot"/>.</summary>
public sealed record GetRoutingStatistics;
