using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Chat.Jinja;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Http;

public sealed record TokenizeResponse(int Count, int MaxModelLen, IReadOnlyList<int> Tokens,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? TokenStrs);

public sealed record DetokenizeResponse(string Prompt);

/// <summary>POST /tokenize and POST /detokenize in vLLM's shapes, on the same <see cref="ModelTokenizer"/> the CLI
/// and the completions endpoints use: <c>{"prompt"}</c> or chat <c>{"messages"}</c> (rendered through the chat template)
/// → <c>{"count","max_model_len","tokens"}</c>; <c>{"tokens"}</c> → <c>{"prompt"}</c>. Also under /v1.</summary>
public static class TokenizeEndpoints
{
    public static readonly IReadOnlySet<string> TokenizeFields = new HashSet<string>(
        ["model", "prompt", "messages", "add_special_tokens", "add_generation_prompt", "return_token_strs", "tools"]);
    public static readonly IReadOnlySet<string> DetokenizeFields = new HashSet<string>(["model", "tokens"]);

    public static void Map(IEndpointRouteBuilder app)
    {
        foreach (var prefix in new[] { "", "/v1" })
        {
            app.MapPost(prefix + "/tokenize", Tokenize);
            app.MapPost(prefix + "/detokenize", Detokenize);
        }
    }

    static async Task Tokenize(HttpContext context)
    {
        var (options, tokenizer, body) = await Read(context, TokenizeFields);
        using var _ = body;
        var root = body.RootElement;
        bool strs = JsonFields.Bool(root, "return_token_strs") ?? false;
        IReadOnlyList<int> tokens;
        if (JsonFields.Get(root, "messages") is not null)
        {
            if (JsonFields.Get(root, "prompt") is not null) throw ApiException.BadRequest("messages", "give either 'prompt' or 'messages', not both");
            var chat = CompletionRequest.Parse(ChatBody(root), CompletionKind.Chat);
            var renderer = context.RequestServices.GetRequiredService<ChatPromptRenderer>();
            string text;
            try { text = renderer.Render(ChatTemplateInput.For(chat.Messages!, chat.Tools, renderer.RendersTools, JsonFields.Bool(root, "add_generation_prompt") ?? true)); }
            catch (TemplateRaisedException e) { throw ApiException.BadRequest("messages", $"the model's chat template rejected the conversation: {e.Message}"); }
            catch (JinjaException e) { throw ApiException.BadRequest("messages", $"the model's chat template failed on this conversation: {e.Message}"); }
            catch (ChatTemplateException e) { throw ApiException.BadRequest("messages", e.Message, "no_chat_template"); }
            tokens = tokenizer.Encode(text, addSpecialTokens: JsonFields.Bool(root, "add_special_tokens") ?? false);
        }
        else
        {
            string prompt = JsonFields.String(root, "prompt")
                ?? throw ApiException.MissingField(root.TryGetProperty("messages", out var m) ? "messages" : "prompt");
            tokens = tokenizer.Encode(prompt, addSpecialTokens: JsonFields.Bool(root, "add_special_tokens") ?? true);
        }
        var runner = context.RequestServices.GetRequiredService<CompletionRunner>();
        var shapes = context.RequestServices.GetRequiredService<LogprobShapes>();
        await ApiResults.WriteJsonAsync(context, new TokenizeResponse(tokens.Count, runner.ContextLength, tokens,
            strs ? tokens.Select(shapes.TokenText).ToArray() : null));
    }

    /// <summary>The tokenize body as a chat request (only the fields chat knows).</summary>
    static JsonElement ChatBody(JsonElement root)
    {
        var o = new System.Text.Json.Nodes.JsonObject { ["model"] = JsonFields.String(root, "model") ?? "" };
        foreach (var name in new[] { "messages", "tools" })
            if (JsonFields.Get(root, name) is { } v) o[name] = System.Text.Json.Nodes.JsonNode.Parse(v.GetRawText());
        return JsonDocument.Parse(o.ToJsonString()).RootElement;
    }

    static async Task Detokenize(HttpContext context)
    {
        var (_, tokenizer, body) = await Read(context, DetokenizeFields);
        using var _ = body;
        int vocab = context.RequestServices.GetRequiredService<IGenerationService>().Config.VocabSize;
        var tokens = JsonFields.IntArray(body.RootElement, "tokens", 0, vocab - 1) ?? throw ApiException.MissingField("tokens");
        await ApiResults.WriteJsonAsync(context, new DetokenizeResponse(tokenizer.Decode(tokens)));
    }

    static async Task<(ServingOptions, ModelTokenizer, JsonDocument)> Read(HttpContext context, IReadOnlySet<string> fields)
    {
        var options = context.RequestServices.GetRequiredService<ServingOptions>();
        var body = await RequestBody.ReadJsonObjectAsync(context, options.MaxRequestBodyBytes);
        try
        {
            RequestFields.Check(body.RootElement, fields);
            if (JsonFields.String(body.RootElement, "model") is { } model && model != options.ModelName)
                throw new ApiException(404, $"The model '{model}' does not exist; this server serves '{options.ModelName}'", "model", "model_not_found");
            var tokenizer = context.RequestServices.GetService<ModelTokenizer>()
                ?? throw new ApiException(400, "this model has no tokenizer", null, "no_tokenizer");
            return (options, tokenizer, body);
        }
        catch { body.Dispose(); throw; }
    }
}
