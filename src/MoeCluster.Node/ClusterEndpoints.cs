using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Runtime.Routing;
using MoeCluster.Placement;

namespace MoeCluster.Node;

/// <summary>Read-only views of the cluster for operators: where each expert lives, and who is a member.</summary>
public static class ClusterEndpoints
{
    public static WebApplication MapClusterEndpoints(this WebApplication app)
    {
        app.MapGet("/v1/cluster/placement", async (ActorRegistry registry, PlacementStrategy strategy) =>
        {
            if (!registry.TryGet<PlacementWatcherKey>(out var watcher))
                return Results.Json(new { error = new { message = "this node has no gateway role; ask a gateway node", type = "invalid_request_error" } }, statusCode: 404);
            var p = await watcher.Ask<PlacementWatcherActor.Placement>(new PlacementWatcherActor.GetPlacement(), TimeSpan.FromSeconds(5));
            return Results.Json(new
            {
                strategy = strategy.Name,
                routing_profile = strategy.ProfilePath,
                // Of the profile's co-activated pairs, the share whose experts share a node now.
                colocated_pair_share = strategy.ColocatedShare(p.ExpertNodes),
                experts = p.ExpertNodes.OrderBy(e => e.Key, StringComparer.Ordinal).ToDictionary(e => e.Key, e => e.Value),
                nodes = p.ExpertNodes.GroupBy(e => e.Value).OrderBy(g => g.Key).ToDictionary(g => g.Key, g => g.Select(e => e.Key).OrderBy(k => k, StringComparer.Ordinal).ToArray()),
            });
        });
        app.MapGet("/v1/cluster/routing", async (ActorRegistry registry, ActorSystem system) =>
        {
            if (!registry.TryGet<GatewayKey>(out var gateway))
                return Results.Json(new { error = new { message = "this node has no gateway role; ask a gateway node", type = "invalid_request_error" } }, statusCode: 404);
            IActorRef statistics;
            try { statistics = await system.ActorSelection(gateway.Path.Child(RoutingStatisticsActor.Name)).ResolveOne(TimeSpan.FromSeconds(5)); }
            catch (ActorNotFoundException)
            {
                return Results.Json(new { error = new { message = "routing statistics are off on this gateway (serve --routing-statistics false), or its model has no MoE layer", type = "invalid_request_error" } }, statusCode: 404);
            }
            var snapshot = await statistics.Ask<RoutingSnapshot>(new GetRoutingStatistics(), TimeSpan.FromSeconds(5));
            return Results.Text(snapshot.ToJson(), "application/json");
        });
        app.MapGet("/v1/cluster/members", (ActorSystem system) =>
        {
            if (!system.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
                return Results.Json(new { error = new { message = "this node runs --engine local: it is not part of a cluster", type = "invalid_request_error" } }, statusCode: 404);
            var state = Cluster.Get(system).State;
            return Results.Json(state.Members.Select(m => new
            {
                address = m.Address.ToString(),
                status = state.Unreachable.Contains(m) ? "unreachable" : m.Status.ToString().ToLowerInvariant(),
                roles = m.Roles.OrderBy(r => r).ToArray(),
            }));
        });
        return app;
    }
}
