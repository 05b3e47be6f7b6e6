using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace MoeCluster.Node.Http;

/// <summary>Bearer API keys for everything under /v1 when keys are configured (/healthz, /readyz and /metrics stay
/// open for probes and scrapers). Keys are compared as SHA-256 digests with a fixed-time comparison against every
/// configured key, so timing reveals neither a key's prefix nor which key matched. Keys are never logged.</summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, ServingOptions options)
{
    readonly byte[][] digests = options.ApiKeys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k))).ToArray();

    public Task InvokeAsync(HttpContext context)
    {
        if (digests.Length == 0 || !context.Request.Path.StartsWithSegments("/v1")) return next(context);
        string header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return ApiResults.WriteErrorAsync(context, new ApiException(401,
                "You didn't provide an API key. Send it in the Authorization header as 'Bearer YOUR_KEY'.", null, "invalid_api_key"));
        if (!Matches(header["Bearer ".Length..].Trim()))
            return ApiResults.WriteErrorAsync(context, new ApiException(401, "Incorrect API key provided.", null, "invalid_api_key"));
        return next(context);
    }

    bool Matches(string key)
    {
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        bool match = false;
        foreach (var d in digests) match |= CryptographicOperations.FixedTimeEquals(d, digest);
        return match;
    }
}
