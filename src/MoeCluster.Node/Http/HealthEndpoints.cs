using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace MoeCluster.Node.Http;

/// <summary>GET /healthz (the process answers: 200) and GET /readyz (200 when <see cref="INodeReadiness"/> says this
/// node can do its job and, where it serves jobs, their store can be written; else 503 with the reason). Both stay open when API keys are configured, for probes.</summary>
public static class HealthEndpoints
{
    static readonly TimeSpan ReadinessTimeout = TimeSpan.FromSeconds(5);

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", async (HttpContext context) =>
        {
            var readiness = context.RequestServices.GetRequiredService<INodeReadiness>();
            ReadinessReport report;
            if (context.RequestServices.GetRequiredService<NodeLifecycle>().Draining)
            {
                await ApiResults.WriteJsonAsync(context, new ReadinessReport("draining", false, 0, 0, "the node is shutting down"), 503);
                return;
            }
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                timeout.CancelAfter(ReadinessTimeout);
                report = await readiness.CheckAsync(timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or Akka.Actor.AskTimeoutException)
            {
                report = new ReadinessReport("unavailable", false, 0, 0, $"the node did not answer within {ReadinessTimeout.TotalSeconds:0} s");
            }
            if (report.Ready && context.RequestServices.GetService<Jobs.JobStoreHealth>() is { } store
                && await store.CheckAsync(context.RequestAborted) is { Usable: false } state)
                report = report with { Status = "store_unusable", Ready = false, Detail = $"job store unusable: {state.Detail}" };
            await ApiResults.WriteJsonAsync(context, report, report.Ready ? 200 : 503);
        });
    }
}
