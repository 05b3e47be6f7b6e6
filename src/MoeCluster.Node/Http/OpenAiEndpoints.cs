using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace MoeCluster.Node.Http;

/// <summary>POST /v1/completions, POST /v1/chat/completions (JSON or server-sent events) and GET /v1/models.</summary>
public static class OpenAiEndpoints
{
    static readonly long StartedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/completions", context => Complete(context, CompletionKind.Completion));
        app.MapPost("/v1/chat/completions", context => Complete(context, CompletionKind.Chat));
        app.MapGet("/v1/models", context =>
        {
            var options = context.RequestServices.GetRequiredService<ServingOptions>();
            var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
            return ApiResults.WriteJsonAsync(context, new ModelList([new ModelCard(options.ModelName, StartedAt, runner.ContextLength)]));
        });
        app.MapGet("/v1/models/{model}", context =>
        {
            var options = context.RequestServices.GetRequiredService<ServingOptions>();
            var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
            var model = (string)context.Request.RouteValues["model"]!;
            if (model != options.ModelName) throw new ApiException(404, $"The model '{model}' does not exist", "model", "model_not_found");
            return ApiResults.WriteJsonAsync(context, new ModelCard(options.ModelName, StartedAt, runner.ContextLength));
        });
    }

    static async Task Complete(HttpContext context, CompletionKind kind)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
        CompletionRequest request;
        using (var body = await RequestBody.ReadJsonObjectAsync(context, options.MaxRequestBodyBytes))
            request = CompletionRequest.Parse(body.RootElement, kind);
        var prepared = runner.Prepare(request);
        if (request.Stream) await Stream(context, runner, prepared);
        else
        {
            var outcome = await runner.RunAsync(prepared, null, null, context.RequestAborted);
            if (outcome is null) return;
            var response = CompletionResponses.Build(prepared, outcome);
            await ApiResults.WriteJsonAsync(context, response, response.GetType());
        }
    }

    /// <summary>OpenAI's streaming format: one <c>data: {chunk}</c> event per piece of text, a last chunk carrying
    /// finish_reason, a usage chunk with no choices when stream_options.include_usage is set, then <c>data: [DONE]</c>.</summary>
    static async Task Stream(HttpContext context, CompletionRunner runner, PreparedCompletion p)
    {
        var r = p.Request;
        bool chat = r.Kind == CompletionKind.Chat;
        object Chunk(string? text, string? finish, bool first = false) => chat
            ? new ChatCompletionChunk(p.Id, p.Created, r.Model, [new ChatChunkChoice(0, new ChatDelta(first ? "assistant" : null, text), finish)], null)
            : new CompletionResponse(p.Id, p.Created, r.Model, [new CompletionChoice(0, text ?? "", finish)], null);

        async ValueTask Started()
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            context.Response.Headers["X-Accel-Buffering"] = "no";
            await context.Response.StartAsync(context.RequestAborted);
            if (chat) await Send(context, Chunk("", null, first: true));
        }

        CompletionOutcome? outcome;
        try { outcome = await runner.RunAsync(p, Started, text => Send(context, Chunk(text, null)), context.RequestAborted); }
        catch (ApiException e) when (context.Response.HasStarted)
        {
            await Send(context, e.ToError());
            await context.Response.Body.WriteAsync(Done, context.RequestAborted);
            return;
        }
        if (outcome is null) return;
        await Send(context, Chunk(chat ? null : "", outcome.FinishReason));
        if (r.IncludeUsage)
        {
            var usage = new Usage(outcome.PromptTokens, outcome.CompletionTokens);
            await Send(context, chat
                ? new ChatCompletionChunk(p.Id, p.Created, r.Model, [], usage)
                : new CompletionResponse(p.Id, p.Created, r.Model, [], usage));
        }
        await context.Response.Body.WriteAsync(Done, context.RequestAborted);
    }

    static async ValueTask Send(HttpContext context, object chunk)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(chunk, chunk.GetType(), OpenAiJson.Options);
        var frame = new byte[json.Length + 8];
        Encoding.ASCII.GetBytes("data: ", frame);
        json.CopyTo(frame, 6);
        frame[^2] = (byte)'\n';
        frame[^1] = (byte)'\n';
        await context.Response.Body.WriteAsync(frame, context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
}

/// <summary>The non-streaming response object for a finished completion (HTTP and batch jobs).</summary>
public static class CompletionResponses
{
    public static object Build(PreparedCompletion p, CompletionOutcome outcome)
    {
        var usage = new Usage(outcome.PromptTokens, outcome.CompletionTokens);
        return p.Request.Kind == CompletionKind.Chat
            ? new ChatCompletionResponse(p.Id, p.Created, p.Request.Model, [new ChatChoice(0, new AssistantMessage(outcome.Text), outcome.FinishReason)], usage)
            : new CompletionResponse(p.Id, p.Created, p.Request.Model, [new CompletionChoice(0, outcome.Text, outcome.FinishReason)], usage);
    }
}
