using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;

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
        app.MapGet("/v1/models", context => ApiResults.WriteJsonAsync(context, new ModelList([Card(context)])));
        app.MapGet("/v1/models/{model}", context =>
        {
            var card = Card(context);
            var model = (string)context.Request.RouteValues["model"]!;
            if (model != card.Id) throw new ApiException(404, $"The model '{model}' does not exist", "model", "model_not_found");
            return ApiResults.WriteJsonAsync(context, card);
        });
    }

    static ModelCard Card(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
        var generation = context.RequestServices.GetRequiredService<IGenerationService>();
        return new ModelCard(options.ModelName, StartedAt, runner.ContextLength, options.DType, generation.Config.VocabSize);
    }

    static async Task Complete(HttpContext context, CompletionKind kind)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
        var shapes = context.RequestServices.GetRequiredService<LogprobShapes>();
        CompletionRequest request;
        using (var body = await RequestBody.ReadJsonObjectAsync(context, options.MaxRequestBodyBytes))
            request = CompletionRequest.Parse(body.RootElement, kind);
        var prepared = runner.Prepare(request);
        if (request.Stream) await Stream(context, runner, shapes, prepared);
        else
        {
            var outcomes = await runner.RunAsync(prepared, null, null, context.RequestAborted);
            if (outcomes is null) return;
            var response = CompletionResponses.Build(prepared, outcomes, shapes);
            await ApiResults.WriteJsonAsync(context, response, response.GetType());
        }
    }

    /// <summary>OpenAI's streaming format: one <c>data: {chunk}</c> event per piece of a choice (text, its logprobs,
    /// completed tool calls), a last chunk per choice carrying finish_reason, a usage chunk with no choices when
    /// stream_options.include_usage is set, then <c>data: [DONE]</c>.</summary>
    static async Task Stream(HttpContext context, CompletionRunner runner, LogprobShapes shapes, PreparedCompletion p)
    {
        var r = p.Request;
        bool chat = r.Kind == CompletionKind.Chat;
        var offsets = new int[p.Choices.Count];
        var callCounts = new int[p.Choices.Count];

        async ValueTask Started()
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            context.Response.Headers["X-Accel-Buffering"] = "no";
            await context.Response.StartAsync(context.RequestAborted);
            if (chat)
                foreach (var c in p.Choices)
                    await Send(context, new ChatCompletionChunk(p.Id, p.Created, r.Model, [new ChatChunkChoice(c.Index, new ChatDelta("assistant", ""), null)], null));
        }

        ValueTask Delta(CompletionDelta d)
        {
            if (chat)
            {
                var calls = d.ToolCalls.Select(t => new ToolCallDelta(callCounts[d.Index]++, t.Id, new FunctionCall(t.Name, t.Arguments))).ToArray();
                var delta = new ChatDelta(null, d.Text.Length > 0 || calls.Length == 0 ? d.Text : null, calls.Length > 0 ? calls : null);
                var logprobs = r.Logprobs is null ? null : shapes.Chat(d.Logprobs);
                return Send(context, new ChatCompletionChunk(p.Id, p.Created, r.Model, [new ChatChunkChoice(d.Index, delta, null, logprobs)], null));
            }
            CompletionLogprobs? lp = null;
            if (r.Logprobs is not null)
            {
                var entries = new List<TokenLogprob?>();
                var tokens = new List<int>();
                if (d.PromptLogprobs is { } prompt)
                {
                    entries.AddRange(prompt);
                    tokens.AddRange(p.Choices[d.Index].Generation.PromptTokens);
                }
                entries.AddRange(d.Logprobs);
                tokens.AddRange(d.Logprobs.Select(l => l.Token));
                lp = shapes.Completion(entries, tokens, offsets[d.Index]);
            }
            offsets[d.Index] += d.Text.Length;
            return Send(context, new CompletionResponse(p.Id, p.Created, r.Model, [new CompletionChoice(d.Index, d.Text, null, lp)], null));
        }

        IReadOnlyList<CompletionOutcome>? outcomes;
        try { outcomes = await runner.RunAsync(p, Started, Delta, context.RequestAborted); }
        catch (ApiException e) when (context.Response.HasStarted)
        {
            await Send(context, e.ToError());
            await context.Response.Body.WriteAsync(Done, context.RequestAborted);
            return;
        }
        if (outcomes is null) return;
        foreach (var o in outcomes)
            await Send(context, chat
                ? new ChatCompletionChunk(p.Id, p.Created, r.Model, [new ChatChunkChoice(o.Index, new ChatDelta(null, null), o.FinishReason)], null)
                : new CompletionResponse(p.Id, p.Created, r.Model, [new CompletionChoice(o.Index, "", o.FinishReason)], null));
        if (r.IncludeUsage)
        {
            var usage = CompletionResponses.UsageOf(outcomes);
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

/// <summary>The non-streaming response object for a finished request (HTTP and batch jobs).</summary>
public static class CompletionResponses
{
    /// <summary>Each prompt counts once however many choices it has (as vLLM counts n &gt; 1), with the prompt tokens
    /// every one of its choices found cached; completion tokens are those of the returned choices.</summary>
    public static Usage UsageOf(IReadOnlyList<CompletionOutcome> outcomes)
    {
        var prompts = outcomes.GroupBy(o => o.Prompt).ToArray();
        return new(prompts.Sum(g => g.First().PromptTokens), outcomes.Sum(o => o.CompletionTokens),
            new PromptTokensDetails(prompts.Sum(g => g.Min(o => o.CachedPromptTokens))));
    }

    public static object Build(PreparedCompletion p, IReadOnlyList<CompletionOutcome> outcomes, LogprobShapes shapes)
    {
        var r = p.Request;
        var usage = UsageOf(outcomes);
        if (r.Kind == CompletionKind.Chat)
            return new ChatCompletionResponse(p.Id, p.Created, r.Model, outcomes.Select(o => new ChatChoice(o.Index,
                new AssistantMessage(o.ToolCalls.Count > 0 && o.Text.Length == 0 ? null : o.Text,
                    o.ToolCalls.Count > 0 ? o.ToolCalls.Select(t => new ToolCallResponse(t.Id, new FunctionCall(t.Name, t.Arguments))).ToArray() : null),
                o.FinishReason, o.Logprobs is { } lp ? shapes.Chat(lp) : null)).ToArray(), usage);
        return new CompletionResponse(p.Id, p.Created, r.Model, outcomes.Select(o =>
        {
            CompletionLogprobs? lp = null;
            if (o.Logprobs is { } generated)
            {
                var prompt = p.Choices.First(c => c.Prompt == o.Prompt).Generation.PromptTokens;
                IReadOnlyList<TokenLogprob?> entries = [.. o.PromptLogprobs ?? [], .. generated];
                IReadOnlyList<int> tokens = o.PromptLogprobs is not null ? [.. prompt, .. o.TokenIds.Take(generated.Count)] : o.TokenIds.Take(generated.Count).ToArray();
                lp = shapes.Completion(entries, tokens, 0);
            }
            return new CompletionChoice(o.Index, o.Text, o.FinishReason, lp);
        }).ToArray(), usage);
    }
}
