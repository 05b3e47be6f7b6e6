using Akka.Actor;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Hosting;

namespace MoeCluster.TestSupport;

public static class PlacementView
{
    public static async Task<IReadOnlyDictionary<string, string>> ExpertNodesAsync(InProcessNode gatewayNode)
    {
        var watcher = gatewayNode.Registry.Get<PlacementWatcherKey>();
        var p = await watcher.Ask<PlacementWatcherActor.Placement>(new PlacementWatcherActor.GetPlacement(), TimeSpan.FromSeconds(5));
        return p.ExpertNodes;
    }

    public static async Task<IReadOnlySet<string>> NodesHostingExpertsAsync(InProcessNode gatewayNode) =>
        (await ExpertNodesAsync(gatewayNode)).Values.ToHashSet();
}
