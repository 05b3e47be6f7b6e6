using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace MoeCluster.Node.Http;

/// <summary>Reads a request body within a size limit and turns every way it can be broken (too large, not UTF-8, not
/// JSON, not an object) into an <see cref="ApiException"/> instead of a framework 500.</summary>
public static class RequestBody
{
    static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    public static async Task<byte[]> ReadBytesAsync(HttpContext context, long limit)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit;
        if (context.Request.ContentLength is long declared && declared > limit) throw TooLarge(limit);
        using var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
            {
                if (buffer.Length + n > limit) throw TooLarge(limit);
                buffer.Write(chunk, 0, n);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { throw TooLarge(limit); }
        catch (BadHttpRequestException e) { throw new ApiException(400, $"could not read the request body: {e.Message}", null, "invalid_body"); }
        return buffer.ToArray();
    }

    /// <summary>The body as a JSON object; the caller disposes the document.</summary>
    public static async Task<JsonDocument> ReadJsonObjectAsync(HttpContext context, long limit)
    {
        var bytes = await ReadBytesAsync(context, limit);
        return ParseObject(bytes, "the request body");
    }

    public static JsonDocument ParseObject(ReadOnlySpan<byte> utf8, string what)
    {
        if (utf8.Length == 0) throw new ApiException(400, $"{what} is empty; expected a JSON object", null, "invalid_json");
        if (!Utf8.IsValid(utf8)) throw new ApiException(400, $"{what} is not valid UTF-8", null, "invalid_encoding");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(utf8.ToArray(), DocumentOptions); }
        catch (JsonException e) { throw new ApiException(400, $"{what} is not valid JSON: {e.Message}", null, "invalid_json"); }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = doc.RootElement.ValueKind;
            doc.Dispose();
            throw new ApiException(400, $"{what} must be a JSON object, got {kind.ToString().ToLowerInvariant()}", null, "invalid_json");
        }
        try { CheckStrings(doc.RootElement, null); }
        catch { doc.Dispose(); throw; }
        return doc;
    }

    /// <summary>Valid JSON may still escape a lone UTF-16 surrogate ("\ud800"), which no .NET string can hold:
    /// System.Text.Json throws on reading it. Every string and property name is read once here, so such a value is a
    /// 400 naming its field and every later read is safe.</summary>
    static void CheckStrings(JsonElement e, string? path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    string name;
                    try { name = p.Name; }
                    catch (InvalidOperationException) { throw LoneSurrogate(path, "a property name"); }
                    CheckStrings(p.Value, path is null ? name : $"{path}.{name}");
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray()) CheckStrings(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.String:
                try { e.GetString(); }
                catch (InvalidOperationException) { throw LoneSurrogate(path, path is null ? "the body" : $"'{path}'"); }
                break;
        }
    }

    static ApiException LoneSurrogate(string? param, string what) =>
        new(400, $"{what} contains an escaped lone UTF-16 surrogate (\\uD800-\\uDFFF without its pair); strings must be valid Unicode", param, "invalid_encoding");

    static ApiException TooLarge(long limit) => new(413, $"request body exceeds the limit of {limit} bytes", null, "request_too_large");
}
