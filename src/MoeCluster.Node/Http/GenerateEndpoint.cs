using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

/// <summary>Result of POST /v1/generate.</summary>
public sealed record GenerateResponse(
    IReadOnlyList<int> PromptTokenIds,
    IReadOnlyList<int> TokenIds,
    string FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float[]? PromptLogits);

/// <summary>POST /v1/generate: token ids in, token ids out, no tokenizer, no chat template and no implicit EOS (only
/// the <c>stop_token_ids</c> given), greedy unless a temperature is given. The CLI uses it to compare the cluster's
/// output with a single-process run token for token.</summary>
public static class GenerateEndpoint
{
    public static void Map(IEndpointRouteBuilder app) => app.MapPost("/v1/generate", Generate);

    static async Task Generate(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
        var generation = context.RequestServices.GetRequiredService<IGenerationService>();
        GenerationRequest request;
        using (var doc = await RequestBody.ReadJsonObjectAsync(context, options.MaxRequestBodyBytes))
        {
            var body = doc.RootElement;
            RequestFields.Check(body, RequestFields.Generate);
            if (JsonFields.String(body, "model") is { } model && model != options.ModelName)
                throw new ApiException(404, $"The model '{model}' does not exist; this server serves '{options.ModelName}'", "model", "model_not_found");
            int vocab = generation.Config.VocabSize;
            var prompt = JsonFields.IntArray(body, "prompt_token_ids", 0, vocab - 1) ?? throw ApiException.MissingField("prompt_token_ids");
            if (prompt.Count == 0) throw ApiException.BadRequest("prompt_token_ids", "'prompt_token_ids' must contain at least one token");
            int context_ = runner.ContextLength;
            if (prompt.Count >= context_)
                throw ApiException.BadRequest("prompt_token_ids", $"the prompt has {prompt.Count} tokens; the context holds {context_}", "context_length_exceeded");
            int maxTokens = JsonFields.Int(body, "max_tokens", 1) ?? Math.Min(16, context_ - prompt.Count);
            if (prompt.Count + maxTokens > context_)
                throw ApiException.BadRequest("max_tokens", $"max_tokens ({maxTokens}) + the prompt ({prompt.Count} tokens) exceeds the context length {context_}", "context_length_exceeded");
            var sampling = SamplingFields.Parse(body, defaultTemperature: 0);
            var stopTokenIds = JsonFields.IntArray(body, "stop_token_ids", 0) ?? [];
            CompletionRunner.CheckVocabulary(sampling, stopTokenIds, vocab);
            if (JsonFields.Bool(body, "ignore_eos") is not null) { /* no implicit EOS here: ignore_eos is always in effect */ }
            request = new GenerationRequest("gen-" + Guid.NewGuid().ToString("N"), prompt, maxTokens)
            {
                Sampling = sampling,
                StopTokenIds = stopTokenIds,
                ReturnPromptLogits = JsonFields.Bool(body, "return_prompt_logits") ?? false,
                Priority = JsonFields.Int(body, "priority", -1_000_000, 1_000_000) ?? 0,
            };
        }

        float[]? logits = null;
        SequenceFinished? finished = null;
        try
        {
            await foreach (var e in generation.GenerateAsync(request, context.RequestAborted))
            {
                if (e is PromptLogits pl) logits = pl.Logits;
                else if (e is SequenceFinished f) finished = f;
            }
        }
        catch (InvalidGenerationRequestException e)
        {
            throw ApiException.BadRequest(e.Field == "prompt" ? "prompt_token_ids" : e.Field, e.Message);
        }
        catch (GatewayOverloadedException e)
        {
            throw new ApiException(429, $"the server is overloaded ({e.Message}); retry later", null, "overloaded", "rate_limit_error");
        }
        catch (GatewayUnavailableException e)
        {
            throw new ApiException(503, e.Message, null, "unavailable", "server_error");
        }
        if (finished is null || finished.Reason == FinishReason.Cancelled) return;
        if (finished.Reason == FinishReason.Error)
            throw new ApiException(500, $"generation failed: {finished.Error}", null, "generation_failed", "server_error");
        await ApiResults.WriteJsonAsync(context, new GenerateResponse(request.PromptTokens, finished.Generated,
            finished.Reason == FinishReason.Length ? "length" : "stop", logits));
    }
}
