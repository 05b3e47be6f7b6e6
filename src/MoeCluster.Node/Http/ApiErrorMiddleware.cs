using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MoeCluster.Node.Http;

/// <summary>Turns every failure of an API request into an OpenAI-style JSON error: <see cref="ApiException"/> with its
/// status, framework bad-request errors (body too large, malformed request) as 4xx, anything else as 500 with a
/// generic message (the detail goes to the log, not to the client).</summary>
public sealed class ApiErrorMiddleware(RequestDelegate next, ServingOptions options, ILogger<ApiErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
            // Routing answers a wrong method (405) or a malformed route with a bare status: give it OpenAI's body too.
            if (context.Response.StatusCode >= 400 && !context.Response.HasStarted && context.Response.ContentType is null)
                await ApiResults.WriteErrorAsync(context, new ApiException(context.Response.StatusCode, context.Response.StatusCode == 405
                    ? $"method {context.Request.Method} is not allowed on {context.Request.Path}"
                    : $"the request failed with status {context.Response.StatusCode}", null,
                    context.Response.StatusCode == 405 ? "method_not_allowed" : "invalid_request"));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested) { /* client went away */ }
        catch (ApiException e) when (!context.Response.HasStarted) { await ApiResults.WriteErrorAsync(context, e, options.RetryAfterSeconds); }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            var status = e.StatusCode == StatusCodes.Status413PayloadTooLarge ? 413 : 400;
            await ApiResults.WriteErrorAsync(context, new ApiException(status, $"bad request: {e.Message}", null, status == 413 ? "request_too_large" : "invalid_request"));
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            logger.LogError(e, "Unhandled error serving {Method} {Path}", context.Request.Method, context.Request.Path);
            await ApiResults.WriteErrorAsync(context, new ApiException(500, "internal server error", null, "internal_error", "server_error"));
        }
    }
}
