using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MoeCluster.Node.Http;

/// <summary>Writes JSON bodies and OpenAI-style errors.</summary>
public static class ApiResults
{
    public static async Task WriteJsonAsync<T>(HttpContext context, T value, int status = 200)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, value, OpenAiJson.Options, context.RequestAborted);
    }

    public static async Task WriteJsonAsync(HttpContext context, object value, Type type, int status = 200)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, value, type, OpenAiJson.Options, context.RequestAborted);
    }

    public static Task WriteErrorAsync(HttpContext context, ApiException e, int retryAfterSeconds = 1)
    {
        if (e.Status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable) context.Response.Headers.RetryAfter = retryAfterSeconds.ToString();
        if (e.Status == StatusCodes.Status401Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer";
        return WriteJsonAsync(context, e.ToError(), e.Status);
    }
}
