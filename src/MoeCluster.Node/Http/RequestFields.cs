using System.Text.Json;

namespace MoeCluster.Node.Http;

/// <summary>Every top-level field each generation endpoint knows: the ones it implements, and the OpenAI/vLLM ones it
/// refuses with the reason. A field in neither list is refused as OpenAI refuses it ("Unrecognized request argument"),
/// so no field is ever silently ignored. docs/API.md has the same table for users.</summary>
public static class RequestFields
{
    /// <summary>Sampling fields shared by completions, chat and /v1/generate (parsed by <see cref="SamplingFields"/>).</summary>
    static readonly string[] Sampling =
    [
        "temperature", "top_p", "top_k", "min_p", "seed", "frequency_penalty", "presence_penalty", "repetition_penalty",
        "logit_bias", "min_tokens", "stop_token_ids", "ignore_eos",
    ];

    static readonly string[] Common =
    [
        "model", "max_tokens", "n", "stop", "stream", "stream_options", "user", "priority", "logprobs", .. Sampling,
    ];

    public static readonly IReadOnlySet<string> Completion = new HashSet<string>([.. Common, "prompt", "echo", "best_of", "response_format"]);

    public static readonly IReadOnlySet<string> Chat = new HashSet<string>(
    [
        .. Common, "messages", "max_completion_tokens", "top_logprobs", "response_format", "tools", "tool_choice", "parallel_tool_calls",
        "safety_identifier", "store", "modalities",
    ]);

    public static readonly IReadOnlySet<string> Generate = new HashSet<string>(
        ["model", "prompt_token_ids", "max_tokens", "return_prompt_logits", "priority", .. Sampling]);

    /// <summary>Known fields we do not implement, with why; any value is refused (400 naming the field).</summary>
    static readonly Dictionary<string, string> Refused = new()
    {
        ["suffix"] = "suffix (fill-in-the-middle) is not supported",
        ["audio"] = "audio output is not supported: the served models are text-only",
        ["prediction"] = "predicted outputs are not supported",
        ["functions"] = "the deprecated 'functions' field is not supported; use 'tools'",
        ["function_call"] = "the deprecated 'function_call' field is not supported; use 'tool_choice'",
        ["web_search_options"] = "web search is not supported",
        ["reasoning_effort"] = "reasoning_effort is not supported: the served models have no reasoning mode",
        ["verbosity"] = "verbosity is not supported",
        ["metadata"] = "stored completions are not supported, so there is nothing to attach metadata to",
        ["service_tier"] = "service tiers are not supported; use 'priority'",
        ["prompt_cache_key"] = "prompt caching is not implemented yet",
        ["prompt_logprobs"] = "prompt_logprobs is not supported; use echo with logprobs on /v1/completions",
        ["use_beam_search"] = "beam search is not supported",
        ["length_penalty"] = "length_penalty only applies to beam search, which is not supported",
        ["guided_json"] = "use response_format {\"type\":\"json_schema\"} instead of vLLM's guided_json",
        ["guided_regex"] = "guided_regex is not supported",
        ["guided_choice"] = "guided_choice is not supported",
        ["guided_grammar"] = "guided_grammar is not supported",
    };

    /// <summary>Fields of one chat message.</summary>
    public static readonly IReadOnlySet<string> Message = new HashSet<string>(["role", "content", "name", "tool_calls", "tool_call_id", "refusal"]);

    /// <summary>Fields of one content part.</summary>
    public static readonly IReadOnlySet<string> ContentPart = new HashSet<string>(["type", "text"]);

    public static readonly IReadOnlySet<string> StreamOptions = new HashSet<string>(["include_usage"]);

    /// <summary>Throws a 400 naming the first field of <paramref name="obj"/> that is refused or unknown.
    /// <paramref name="at"/> is the object's own path (null for the body); <paramref name="extra"/> names wrapper
    /// fields the caller handles (a batch line's <c>custom_id</c>).</summary>
    public static void Check(JsonElement obj, IReadOnlySet<string> known, string? at = null, IReadOnlySet<string>? extra = null)
    {
        foreach (var p in obj.EnumerateObject())
        {
            if (known.Contains(p.Name) || extra?.Contains(p.Name) == true) continue;
            string param = at is null ? p.Name : $"{at}.{p.Name}";
            if (at is null && Refused.TryGetValue(p.Name, out var why)) throw ApiException.BadRequest(param, why, "unsupported_parameter");
            throw ApiException.BadRequest(param, $"Unrecognized request argument supplied: {param}", "unknown_parameter");
        }
    }
}
