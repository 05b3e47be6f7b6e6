using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster generate`: one completion, in this process (--model) or on a running cluster (--gateway).
/// The JSON output is the same either way, so outputs of any two deployments can be compared with one command.</summary>
public static class GenerateCommand
{
    static readonly Option<string?> Model = new("--model") { Description = "checkpoint directory: generate in this process (default: the built-in model)" };
    static readonly Option<string?> Gateway = new("--gateway") { Description = "URL of a gateway node (http://host:8080): generate on that cluster" };
    static readonly Option<string?> ApiKey = new("--api-key") { Description = "API key for --gateway (or MOECLUSTER_API_KEY)" };
    static readonly Option<string?> Prompt = new("--prompt") { Description = "prompt text (needs the checkpoint's tokenizer)" };
    static readonly Option<string?> TokenIds = new("--token-ids") { Description = "prompt as token ids, e.g. 1,2,3" };
    static readonly Option<int> MaxTokens = new("--max-tokens") { Description = "tokens to generate", DefaultValueFactory = _ => 32 };
    static readonly Option<bool> Greedy = new("--greedy") { Description = "argmax decoding (same as --temperature 0)" };
    static readonly Option<double> Temperature = new("--temperature") { DefaultValueFactory = _ => 1.0 };
    static readonly Option<double> TopP = new("--top-p") { DefaultValueFactory = _ => 1.0 };
    static readonly Option<int> TopK = new("--top-k") { DefaultValueFactory = _ => 0 };
    static readonly Option<long?> Seed = new("--seed");
    static readonly Option<string> Output = new("--output") { Description = "text or json", DefaultValueFactory = _ => "text" };
    static readonly Option<bool> Logits = new("--logits") { Description = "with --output json: include the logits of the last prompt position" };
    static readonly Option<string> DType = new("--dtype") { DefaultValueFactory = _ => "float32" };
    static readonly Option<string> Device = new("--device") { DefaultValueFactory = _ => "cpu" };

    public static Command Create()
    {
        var c = new Command("generate", "Generate a completion in this process or on a running cluster.")
        {
            Model, Gateway, ApiKey, Prompt, TokenIds, MaxTokens, Greedy, Temperature, TopP, TopK, Seed, Output, Logits, DType, Device,
        };
        c.SetAction(async (parse, ct) =>
        {
            try { return await Run(parse, ct); }
            catch (Exception e) when (e is ArgumentException or InvalidGenerationRequestException or HttpRequestException or ModelConfigException or MoeCluster.Model.Checkpoints.CheckpointException)
            {
                Console.Error.WriteLine($"moecluster generate: {e.Message}");
                return 2;
            }
        });
        return c;
    }

    static async Task<int> Run(ParseResult p, CancellationToken ct)
    {
        var gateway = p.GetValue(Gateway);
        var modelDir = p.GetValue(Model) ?? (gateway is null ? DefaultModel.Directory() : null);
        var tokenizer = modelDir is not null ? ModelTokenizer.Load(modelDir) : null;
        var json = p.GetValue(Output) == "json";
        if (p.GetValue(Output) is not ("json" or "text")) throw new ArgumentException("--output must be text or json");
        IReadOnlyList<int> prompt;
        if (p.GetValue(TokenIds) is string ids)
            prompt = ids.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(t => int.TryParse(t, out var v) ? v : throw new ArgumentException($"--token-ids: '{t}' is not an integer")).ToArray();
        else if (p.GetValue(Prompt) is string text)
        {
            if (tokenizer is null && gateway is null) throw new ArgumentException($"--prompt needs a tokenizer, and {modelDir} has none; use --token-ids");
            prompt = tokenizer?.Encode(text) ?? [];
        }
        else throw new ArgumentException("give --prompt TEXT or --token-ids 1,2,3");

        var sampling = new SamplingOptions
        {
            Temperature = p.GetValue(Greedy) ? 0 : p.GetValue(Temperature), TopP = p.GetValue(TopP), TopK = p.GetValue(TopK), Seed = p.GetValue(Seed),
        };
        var stops = tokenizer?.EosTokenIds ?? [];
        SequenceFinished finished;
        float[]? logits = null;
        if (gateway is not null)
        {
            if (prompt.Count == 0 && p.GetValue(Prompt) is string) throw new ArgumentException("--prompt with --gateway needs --model DIR for the tokenizer, or use --token-ids");
            (finished, logits) = await Remote(gateway, p.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("MOECLUSTER_API_KEY"), prompt, p.GetValue(MaxTokens), sampling, stops, p.GetValue(Logits), ct);
        }
        else
        {
            var options = ModuleOptions.Parse(p.GetValue(DType)!, p.GetValue(Device)!);
            using var model = MoeTransformer.Load(modelDir!, options, progress: ConsoleProgress.For($"loading {modelDir}"));
            var batching = new BatchingOptions { MaxBatchSize = 1, ContextLength = Math.Min(model.Config.MaxPositionEmbeddings, prompt.Count + p.GetValue(MaxTokens)) };
            using var engine = new LocalEngine(model, batching);
            var request = new GenerationRequest("cli", prompt, p.GetValue(MaxTokens)) { Sampling = sampling, StopTokenIds = stops, ReturnPromptLogits = p.GetValue(Logits) };
            var detok = tokenizer?.CreateStreamingDetokenizer();
            finished = engine.Run([request], e =>
            {
                if (e is PromptLogits l) logits = l.Logits;
                if (e is TokenGenerated t && !json && detok is not null) Console.Write(detok.Append(t.Token));
            })["cli"];
            if (!json && detok is not null) { Console.Write(detok.Flush()); Console.WriteLine(); return 0; }
        }

        if (json)
        {
            var o = new JsonObject
            {
                ["prompt_token_ids"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
                ["token_ids"] = new JsonArray(finished.Generated.Select(t => (JsonNode)t).ToArray()),
                ["finish_reason"] = finished.Reason.ToString().ToLowerInvariant(),
            };
            if (tokenizer is not null) o["text"] = tokenizer.Decode(finished.Generated);
            if (logits is not null) o["prompt_logits"] = new JsonArray(logits.Select(v => (JsonNode)v).ToArray());
            Console.WriteLine(o.ToJsonString());
        }
        else Console.WriteLine(tokenizer is not null ? tokenizer.Decode(finished.Generated) : string.Join(",", finished.Generated));
        return finished.Reason == FinishReason.Error ? 1 : 0;
    }

    static async Task<(SequenceFinished, float[]?)> Remote(string gateway, string? key, IReadOnlyList<int> prompt, int maxTokens, SamplingOptions s,
        IReadOnlyList<int> stops, bool logits, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = new Uri(gateway.TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(10) };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var body = new JsonObject
        {
            ["prompt_token_ids"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
            ["max_tokens"] = maxTokens, ["temperature"] = s.Temperature, ["top_p"] = s.TopP, ["top_k"] = s.TopK,
            ["stop_token_ids"] = new JsonArray(stops.Select(t => (JsonNode)t).ToArray()), ["return_prompt_logits"] = logits,
        };
        if (s.Seed is long seed) body["seed"] = seed;
        using var response = await http.PostAsJsonAsync("v1/generate", body, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new HttpRequestException($"{gateway} answered {(int)response.StatusCode}: {text}");
        var r = JsonNode.Parse(text)!;
        var generated = r["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
        var reason = Enum.Parse<FinishReason>(r["finish_reason"]!.GetValue<string>(), ignoreCase: true);
        var l = r["prompt_logits"]?.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        return (new SequenceFinished("remote", reason, prompt.Count, generated), l);
    }
}
