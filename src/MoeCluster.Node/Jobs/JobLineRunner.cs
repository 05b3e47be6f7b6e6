using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Jobs;

/// <summary>What running one line produced.</summary>
public abstract record LineOutcome(int Line);

/// <summary>The line's one result (a response or an error) — persisted, never recomputed.</summary>
public sealed record LineFinished(int Line, string Result, bool IsError) : LineOutcome(Line);

/// <summary>The gateway is overloaded: run the line again after <see cref="Delay"/>.</summary>
public sealed record LineDeferred(int Line, TimeSpan Delay) : LineOutcome(Line);

/// <summary>The run was cancelled (job cancelled, node stopping): no result; a resumed job runs the line again.</summary>
public sealed record LineAbandoned(int Line) : LineOutcome(Line);

/// <summary>Runs one JSONL line of a batch job.</summary>
public interface IJobLineRunner
{
    Task<LineOutcome> RunAsync(int line, string text, CancellationToken cancellation);
}

/// <summary>One line of GET /v1/jobs/{id}/results. <see cref="StatusCode"/> is the HTTP status the same request would
/// have got (the Batch API's output and error files carry it).</summary>
public sealed record JobResultLine(
    [property: JsonPropertyName("line")] int Line,
    [property: JsonPropertyName("custom_id"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? CustomId,
    [property: JsonPropertyName("response"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Response,
    [property: JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ApiErrorBody? Error,
    [property: JsonPropertyName("status_code")] int StatusCode = 200);

/// <summary>Runs a line as the HTTP API would run the same request body, non-streaming. A line is either a request
/// body (chat when it has "messages", else completion) or an OpenAI Batch line
/// <c>{"custom_id", "method", "url": "/v1/chat/completions"|"/v1/completions", "body": {...}}</c>.
/// A bad line yields an error result; only overload (retry later) and cancellation yield no result.</summary>
public sealed class JobLineRunner : IJobLineRunner
{
    readonly Lazy<CompletionRunner> completions;
    readonly Lazy<LogprobShapes> shapes;
    readonly JobSlots slots;
    readonly int linePriority;

    /// <summary>Resolves the runner (and so the gateway) on the first line, not when the job actors start: a node
    /// resumes jobs at start-up, possibly before its gateway is registered. Every line holds one of the node's
    /// <paramref name="slots"/> while it runs, so jobs never fill more than their share of the batch, and runs at
    /// <see cref="ServingOptions.JobLinePriority"/> plus its own priority, below interactive requests.</summary>
    public JobLineRunner(Func<CompletionRunner> runner, Func<LogprobShapes> shapes, JobSlots slots, ServingOptions options)
    {
        completions = new(runner);
        this.shapes = new(shapes);
        this.slots = slots;
        linePriority = options.JobLinePriority;
    }

    public static string? CustomId(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("custom_id", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        }
        catch (JsonException) { return null; }
    }

    public async Task<LineOutcome> RunAsync(int line, string text, CancellationToken cancellation)
    {
        string? customId = null;
        try { await slots.WaitAsync(cancellation); }
        catch (OperationCanceledException) { return new LineAbandoned(line); }
        try
        {
            using var doc = RequestBody.ParseObject(Encoding.UTF8.GetBytes(text), $"line {line}");
            var body = doc.RootElement;
            customId = JsonFields.Get(body, "custom_id") is { ValueKind: JsonValueKind.String } c ? c.GetString() : null;
            var kind = JsonFields.Get(body, "messages") is not null ? CompletionKind.Chat : CompletionKind.Completion;
            IReadOnlySet<string> extra = CustomIdOnly;
            if (JsonFields.Object(body, "body") is { } inner)
            {
                RequestFields.Check(body, WrapperFields);
                if (JsonFields.String(body, "method") is { } method && method != "POST")
                    throw ApiException.BadRequest("method", $"'method' must be POST, got '{method}'");
                string url = JsonFields.String(body, "url") ?? "/v1/completions";
                kind = url switch
                {
                    "/v1/chat/completions" => CompletionKind.Chat,
                    "/v1/completions" => CompletionKind.Completion,
                    _ => throw ApiException.BadRequest("url", $"'url' must be /v1/completions or /v1/chat/completions, got '{url}'"),
                };
                body = inner;
                extra = NoFields;
            }
            var parsed = CompletionRequest.Parse(body, kind, extra);
            var request = parsed with { Stream = false, Priority = linePriority + Math.Max(0, parsed.Priority) };
            var runner = completions.Value;
            var prepared = runner.Prepare(request);
            var outcomes = await runner.RunAsync(prepared, null, null, cancellation);
            if (outcomes is null) return new LineAbandoned(line);
            var response = CompletionResponses.Build(prepared, outcomes, shapes.Value);
            return new LineFinished(line, JsonSerializer.Serialize(new JobResultLine(line, customId, response, null), OpenAiJson.Options), false);
        }
        catch (ApiException e) when (e.Status is 429 or 503) { return new LineDeferred(line, TimeSpan.FromSeconds(1)); }
        catch (ApiException e) { return Failed(line, customId, e.Status, e.ToError().Error); }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested) { return new LineAbandoned(line); }
        finally { slots.Release(); }
    }

    /// <summary>The OpenAI Batch line around a request body.</summary>
    static readonly IReadOnlySet<string> WrapperFields = new HashSet<string>(["custom_id", "method", "url", "body"]);
    static readonly IReadOnlySet<string> CustomIdOnly = new HashSet<string>(["custom_id"]);
    static readonly IReadOnlySet<string> NoFields = new HashSet<string>();

    public static LineFinished Failed(int line, string? customId, int statusCode, ApiErrorBody error) =>
        new(line, JsonSerializer.Serialize(new JobResultLine(line, customId, null, error, statusCode), OpenAiJson.Options), true);
}
