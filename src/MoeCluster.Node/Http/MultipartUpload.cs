using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace MoeCluster.Node.Http;

/// <summary>A multipart/form-data upload read as a stream: the part named <c>file</c> goes straight to a temporary
/// file on disk (never whole in memory), the other parts are small text fields (<c>purpose</c>). Every way the body
/// can be broken — no boundary, a boundary that never occurs, a body that ends before the closing boundary, a part
/// without a name, a file over the limit — is an <see cref="ApiException"/> naming it, never a 500. The caller
/// disposes the upload, which deletes the temporary file unless it was moved.</summary>
public sealed class MultipartUpload : IDisposable
{
    const int MaxFieldBytes = 16 * 1024;

    public required string Path { get; init; }
    public required string FileName { get; init; }
    public required long Length { get; init; }
    public required IReadOnlyDictionary<string, string> Fields { get; init; }

    public static async Task<MultipartUpload> ReadAsync(HttpContext context, string directory, long maxFileBytes)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = maxFileBytes + 64 * 1024;
        if (!MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var mediaType) || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(400, "the upload must be multipart/form-data with the file in a part named 'file'", "file", "invalid_body");
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary))
            throw new ApiException(400, "the multipart Content-Type has no boundary parameter", "file", "invalid_body");
        if (boundary.Length > 200)
            throw new ApiException(400, "the multipart boundary is longer than 200 characters", "file", "invalid_body");

        Directory.CreateDirectory(directory);
        var path = System.IO.Path.Combine(directory, "upload-" + Guid.NewGuid().ToString("N") + ".part");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        string? fileName = null;
        long length = 0;
        try
        {
            var reader = new MultipartReader(boundary, context.Request.Body) { HeadersLengthLimit = 16 * 1024 };
            MultipartSection? section;
            while ((section = await reader.ReadNextSectionAsync(context.RequestAborted)) is not null)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.IsFormDisposition() && !disposition.IsFileDisposition())
                    throw new ApiException(400, "a multipart part has no 'Content-Disposition: form-data; name=...' header", "file", "invalid_body");
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                if (name == "file" || (disposition.IsFileDisposition() && fileName is null && name.Length == 0))
                {
                    if (fileName is not null) throw new ApiException(400, "the multipart body has more than one 'file' part", "file", "invalid_body");
                    fileName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value ?? "upload.jsonl";
                    length = await CopyLimitedAsync(section.Body, path, maxFileBytes, context.RequestAborted);
                }
                else
                {
                    using var text = new StreamReader(section.Body);
                    var buffer = new char[MaxFieldBytes + 1];
                    int n = await text.ReadBlockAsync(buffer, context.RequestAborted);
                    if (n > MaxFieldBytes) throw new ApiException(400, $"multipart field '{name}' is longer than {MaxFieldBytes} characters", name, "invalid_value");
                    fields[name] = new string(buffer, 0, n);
                }
            }
        }
        catch (Exception e) when (e is not ApiException && e is not OperationCanceledException && !Jobs.JobStoreFaults.IsDiskFull(e))
        {
            File.Delete(path);
            throw e switch
            {
                BadHttpRequestException { StatusCode: 413 } => TooLarge(maxFileBytes),
                BadHttpRequestException b => new ApiException(400, $"could not read the upload: {b.Message}", "file", "invalid_body"),
                // MultipartReader: "Unexpected end of Stream" (truncated, or the boundary never occurs), bad headers.
                IOException or InvalidDataException => new ApiException(400,
                    $"malformed multipart body: {e.Message.TrimEnd('.')} (a truncated upload, or a body whose parts are not delimited by the boundary '{boundary}' its Content-Type declares)",
                    "file", "invalid_body"),
                _ => e,
            };
        }
        catch
        {
            File.Delete(path);
            throw;
        }
        if (fileName is null)
        {
            File.Delete(path);
            throw ApiException.BadRequest("file", "the multipart body has no file; upload it as the part named 'file'", "missing_required_parameter");
        }
        return new MultipartUpload { Path = path, FileName = fileName, Length = length, Fields = fields };
    }

    /// <summary>Streams <paramref name="source"/> to a new file, failing with 413 past <paramref name="limit"/> bytes.</summary>
    public static async Task<long> CopyLimitedAsync(Stream source, string path, long limit, CancellationToken cancellation)
    {
        await using var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = await source.ReadAsync(buffer, cancellation)) > 0)
        {
            total += n;
            if (total > limit) throw TooLarge(limit);
            await target.WriteAsync(buffer.AsMemory(0, n), cancellation);
        }
        return total;
    }

    public static ApiException TooLarge(long limit) => new(413, $"the uploaded file exceeds the limit of {limit} bytes", "file", "request_too_large");

    /// <summary>A body that is the file itself (Content-Type application/jsonl or anything not multipart).</summary>
    public static async Task<MultipartUpload> ReadRawAsync(HttpContext context, string directory, long maxFileBytes, string fileName)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = maxFileBytes;
        if (context.Request.ContentLength > maxFileBytes) throw TooLarge(maxFileBytes);
        Directory.CreateDirectory(directory);
        var path = System.IO.Path.Combine(directory, "upload-" + Guid.NewGuid().ToString("N") + ".part");
        try
        {
            long length = await CopyLimitedAsync(context.Request.Body, path, maxFileBytes, context.RequestAborted);
            return new MultipartUpload { Path = path, FileName = fileName, Length = length, Fields = new Dictionary<string, string>() };
        }
        catch (BadHttpRequestException e)
        {
            File.Delete(path);
            throw e.StatusCode == 413 ? TooLarge(maxFileBytes) : new ApiException(400, $"could not read the request body: {e.Message}", null, "invalid_body");
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    public void Dispose()
    {
        try { File.Delete(Path); } catch (IOException) { /* already moved or gone */ }
    }
}

/// <summary>Caps uploads in progress on this node (each holds a connection and a temporary file); one over the cap
/// gets 429 with Retry-After instead of queueing without bound.</summary>
public sealed class UploadSlots(int slots)
{
    readonly SemaphoreSlim semaphore = new(Math.Max(1, slots), Math.Max(1, slots));

    public int Slots { get; } = Math.Max(1, slots);

    public IDisposable Enter()
    {
        if (!semaphore.Wait(0))
            throw new ApiException(429, $"{Slots} uploads are already in progress on this node; retry shortly", "file", "too_many_uploads", "rate_limit_error");
        return new Release(semaphore);
    }

    sealed class Release(SemaphoreSlim semaphore) : IDisposable
    {
        int released;
        public void Dispose() { if (Interlocked.Exchange(ref released, 1) == 0) semaphore.Release(); }
    }
}
