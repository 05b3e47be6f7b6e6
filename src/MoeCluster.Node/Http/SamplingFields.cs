using System.Globalization;
using System.Text.Json;
using MoeCluster.Model.Generation;

namespace MoeCluster.Node.Http;

/// <summary>The sampling fields completions, chat and /v1/generate share, read with OpenAI's bounds (temperature in
/// [0, 2], penalties in [-2, 2], logit_bias values in [-100, 100]) and vLLM's for its extensions (top_k -1 or 0 = off,
/// min_p in [0, 1], repetition_penalty in (0, 10]). Token ids are checked against the vocabulary later, by
/// <see cref="CompletionRunner.Prepare"/>, which knows the model.</summary>
public static class SamplingFields
{
    public static SamplingOptions Parse(JsonElement body, double defaultTemperature)
    {
        int topK = JsonFields.Int(body, "top_k", -1) ?? 0;
        return new SamplingOptions
        {
            Temperature = JsonFields.Number(body, "temperature", 0, 2) ?? defaultTemperature,
            TopP = JsonFields.Number(body, "top_p", 0, 1, minExclusive: true) ?? 1.0,
            TopK = topK < 0 ? 0 : topK,
            MinP = JsonFields.Number(body, "min_p", 0, 1) ?? 0,
            Seed = JsonFields.Long(body, "seed"),
            FrequencyPenalty = JsonFields.Number(body, "frequency_penalty", -2, 2) ?? 0,
            PresencePenalty = JsonFields.Number(body, "presence_penalty", -2, 2) ?? 0,
            RepetitionPenalty = JsonFields.Number(body, "repetition_penalty", 0, 10, minExclusive: true) ?? 1,
            LogitBias = LogitBias(body),
            MinTokens = JsonFields.Int(body, "min_tokens", 0) ?? 0,
        };
    }

    /// <summary>OpenAI's <c>{"token id": bias}</c> object.</summary>
    static IReadOnlyDictionary<int, float> LogitBias(JsonElement body)
    {
        if (JsonFields.Object(body, "logit_bias") is not { } o) return new Dictionary<int, float>();
        var bias = new Dictionary<int, float>();
        foreach (var p in o.EnumerateObject())
        {
            string at = $"logit_bias.{p.Name}";
            if (!int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int token))
                throw ApiException.BadRequest("logit_bias", $"logit_bias keys must be token ids (non-negative integers as strings), got '{p.Name}'");
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out double v) || !double.IsFinite(v))
                throw ApiException.WrongType(at, "a number");
            if (v < -100 || v > 100) throw ApiException.BadRequest(at, $"'{at}' must be between -100 and 100, got {p.Value.GetRawText()}");
            bias[token] = (float)v;
        }
        return bias;
    }
}
