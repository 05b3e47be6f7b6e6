using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;

namespace MoeCluster.Node.Http;

/// <summary>Counts HTTP requests by route template and status. The endpoint label is the route pattern
/// (<c>/v1/jobs/{id}</c>, never the concrete id) or "unmatched", so the series count stays bounded.</summary>
public sealed class HttpMetrics(RequestDelegate next)
{
    public static readonly Counter Requests = Metrics.CreateCounter("moecluster_http_requests_total",
        "HTTP requests answered, by endpoint (route template) and status code.", "endpoint", "status");

    public static readonly Histogram Duration = Metrics.CreateHistogram("moecluster_http_request_duration_seconds",
        "Time to answer an HTTP request (to the end of the stream for streaming responses), by endpoint.",
        new HistogramConfiguration { LabelNames = ["endpoint"], Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] });

    public async Task InvokeAsync(HttpContext context)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try { await next(context); }
        finally
        {
            string endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            if (!endpoint.StartsWith('/')) endpoint = "/" + endpoint;
            int status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
            Requests.WithLabels(endpoint, status.ToString()).Inc();
            Duration.WithLabels(endpoint).Observe(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
    }
}
