using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

public sealed record ReadinessReport(string Status, bool Ready, int Waiting, int Running, string Detail);

/// <summary>GET /healthz (the process answers: 200) and GET /readyz (200 when the gateway reports Ready, else 503
/// with its detail). Both stay open when API keys are configured, for orchestrator probes.</summary>
public static class HealthEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", async (HttpContext context) =>
        {
            var generation = context.RequestServices.GetRequiredService<IGenerationService>();
            GatewayStatus status;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                status = await generation.GetStatusAsync(timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException)
            {
                await ApiResults.WriteJsonAsync(context, new ReadinessReport("unavailable", false, 0, 0, "the gateway did not answer within 5 s"), 503);
                return;
            }
            var report = new ReadinessReport(status.Ready ? "ready" : "not_ready", status.Ready, status.Waiting, status.Running, status.Detail);
            await ApiResults.WriteJsonAsync(context, report, status.Ready ? 200 : 503);
        });
    }
}
