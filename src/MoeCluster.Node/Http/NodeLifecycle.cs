using Microsoft.AspNetCore.Http;

namespace MoeCluster.Node.Http;

/// <summary>Whether this node is shutting down (SIGTERM received). From then on /readyz says so (the Service and
/// the load balancer stop sending traffic) and new requests under /v1 get 503 with Retry-After, while the requests
/// already running finish.</summary>
public sealed class NodeLifecycle
{
    volatile bool draining;

    public bool Draining => draining;

    public void StartDraining() => draining = true;
}

/// <summary>Refuses new /v1 requests with 503 + Retry-After while the node drains (probes and /metrics stay open).</summary>
public sealed class DrainingMiddleware(RequestDelegate next, NodeLifecycle lifecycle)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (lifecycle.Draining && context.Request.Path.StartsWithSegments("/v1"))
            throw new ApiException(503, "this node is shutting down and takes no new requests; retry on another gateway", null, "node_draining", "server_error");
        return next(context);
    }
}
