using System.Text;
using System.Text.Json;

namespace MoeCluster.Node.Jobs;

/// <summary>OpenAI's rules for a batch input file, checked before any line runs: every line a JSON object with a
/// string <c>custom_id</c> unique in the file, <c>method</c> POST, a <c>url</c> equal to the batch's endpoint and an
/// object <c>body</c>. Every broken line is reported (line numbers from 1, as OpenAI does), up to a bound.</summary>
public static class BatchInput
{
    public static readonly string[] Endpoints = ["/v1/chat/completions", "/v1/completions"];
    const int MaxErrors = 100;

    public static BatchError[] Validate(IReadOnlyList<string> lines, string endpoint)
    {
        var errors = new List<BatchError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Count && errors.Count < MaxErrors; i++)
        {
            int line = i + 1;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(Encoding.UTF8.GetBytes(lines[i])); }
            catch (JsonException) { errors.Add(new("invalid_json_line", $"line {line} is not valid JSON", null, line)); continue; }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) { errors.Add(new("invalid_json_line", $"line {line} is not a JSON object", null, line)); continue; }
                if (!root.TryGetProperty("custom_id", out var id) || id.ValueKind != JsonValueKind.String)
                    errors.Add(new("missing_required_parameter", $"line {line} has no string 'custom_id'", "custom_id", line));
                else if (!seen.Add(id.GetString()!))
                    errors.Add(new("duplicate_custom_id", $"line {line} repeats custom_id '{id.GetString()}'; every custom_id in a batch must be unique", "custom_id", line));
                if (!root.TryGetProperty("method", out var method) || method.ValueKind != JsonValueKind.String || method.GetString() != "POST")
                    errors.Add(new("invalid_method", $"line {line}: 'method' must be POST", "method", line));
                if (!root.TryGetProperty("url", out var url) || url.ValueKind != JsonValueKind.String || url.GetString() != endpoint)
                    errors.Add(new("mismatched_endpoint", $"line {line}: 'url' must equal the batch endpoint {endpoint}", "url", line));
                if (!root.TryGetProperty("body", out var body) || body.ValueKind != JsonValueKind.Object)
                    errors.Add(new("missing_required_parameter", $"line {line} has no object 'body'", "body", line));
            }
        }
        return errors.ToArray();
    }
}
