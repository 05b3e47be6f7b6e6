using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// <c>model.safetensors.index.json</c> of a sharded checkpoint:
/// <c>{"metadata": {"total_size": N, ...}, "weight_map": {"tensor.name": "model-00001-of-00002.safetensors", ...}}</c>.
/// </summary>
internal static class CheckpointIndex
{
    /// <summary>Tensor name → shard file name (relative to the index's directory).</summary>
    public static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(indexPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"cannot read index file {indexPath}: {e.Message}", indexPath, inner: e);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"index file {indexPath} is not valid JSON ({e.Message})", indexPath, inner: e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var weightMap)
                || weightMap.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"index file {indexPath} has no \"weight_map\" object mapping tensor names to shard files", indexPath);
            }
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in weightMap.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(item.Value.GetString()))
                {
                    throw new CheckpointException(
                        $"index file {indexPath} maps tensor '{item.Name}' to {item.Value.GetRawText()}; expected a shard file name", indexPath, item.Name);
                }
                if (!map.TryAdd(item.Name, item.Value.GetString()!))
                {
                    throw new CheckpointException($"index file {indexPath} lists tensor '{item.Name}' twice", indexPath, item.Name);
                }
            }
            return map;
        }
    }

    /// <summary>
    /// The index text transformers writes: <c>json.dumps(index, indent=2, sort_keys=True) + "\n"</c>, with
    /// <c>total_parameters</c> and <c>total_size</c> in its metadata.
    /// </summary>
    public static string Format(long totalParameters, long totalSize, IReadOnlyDictionary<string, string> weightMap)
    {
        var sb = new StringBuilder();
        sb.Append("{\n  \"metadata\": {\n");
        sb.Append("    \"total_parameters\": ").Append(totalParameters.ToString(CultureInfo.InvariantCulture)).Append(",\n");
        sb.Append("    \"total_size\": ").Append(totalSize.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("  },\n  \"weight_map\": {");
        bool first = true;
        foreach (var (name, file) in weightMap.OrderBy(kv => kv.Key, JsonText.CodePointOrder))
        {
            sb.Append(first ? "\n" : ",\n").Append("    ");
            first = false;
            JsonText.AppendString(sb, name, asciiOnly: true);
            sb.Append(": ");
            JsonText.AppendString(sb, file, asciiOnly: true);
        }
        sb.Append(first ? "}" : "\n  }");
        sb.Append("\n}\n");
        return sb.ToString();
    }
}
