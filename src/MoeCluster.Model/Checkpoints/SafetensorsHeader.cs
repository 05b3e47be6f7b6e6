using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// The JSON header of a safetensors file: parsing with validation against the data section's length, and writing
/// in the reference library's exact layout.
/// </summary>
internal static class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";

    /// <summary>The reference library refuses larger headers; a bigger length means a corrupt or foreign file.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public sealed record Parsed(Dictionary<string, TensorEntry> Tensors, Dictionary<string, string> Metadata);

    public static Parsed Parse(ReadOnlyMemory<byte> json, string path, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"header of {path} is not valid JSON ({e.Message}); the file is corrupt or not safetensors", path, inner: e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"header of {path} is a JSON {Kind(root)}, not an object of tensors", path);
            }
            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    ParseMetadata(property.Value, path, metadata);
                    continue;
                }
                var entry = ParseEntry(property.Name, property.Value, path, dataLength);
                if (!tensors.TryAdd(entry.Name, entry))
                {
                    throw new CheckpointException($"tensor '{entry.Name}' appears twice in the header of {path}", path, entry.Name);
                }
            }
            return new Parsed(tensors, metadata);
        }
    }

    static void ParseMetadata(JsonElement value, string path, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException($"'{MetadataKey}' in the header of {path} is a JSON {Kind(value)}; expected an object of strings", path);
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointException(
                    $"'{MetadataKey}.{item.Name}' in the header of {path} is a JSON {Kind(item.Value)}; metadata values must be strings", path);
            }
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    static TensorEntry ParseEntry(string name, JsonElement value, string path, long dataLength)
    {
        CheckpointException Bad(string problem) => new($"tensor '{name}' in {path}: {problem}", path, name);

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad($"header entry is a JSON {Kind(value)}; expected {{\"dtype\", \"shape\", \"data_offsets\"}}");
        }
        if (!value.TryGetProperty("dtype", out var dtypeJson) || dtypeJson.ValueKind != JsonValueKind.String)
        {
            throw Bad("header entry has no string 'dtype'");
        }
        string dtypeName = dtypeJson.GetString()!;
        if (!SafetensorsDType.TryParse(dtypeName, out var dtype))
        {
            throw Bad($"unknown dtype '{dtypeName}' (known: {string.Join(", ", SafetensorsDType.Names)})");
        }
        long[] shape = ReadIntegers(value, "shape", Bad);
        long[] offsets = ReadIntegers(value, "data_offsets", Bad);
        if (offsets.Length != 2)
        {
            throw Bad($"'data_offsets' has {offsets.Length} numbers; expected [begin, end]");
        }
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
        {
            throw Bad($"'data_offsets' [{begin}, {end}] end before they begin");
        }

        long? expected;
        try
        {
            long elements = shape.Aggregate(1L, (n, d) => checked(n * d));
            expected = dtype.ByteLength(elements);
        }
        catch (OverflowException)
        {
            throw Bad($"shape {TensorEntry.FormatShape(shape)} is too large to address");
        }
        if (expected is null)
        {
            throw Bad($"shape {TensorEntry.FormatShape(shape)} of {dtypeName} does not fill a whole number of bytes");
        }
        if (expected != end - begin)
        {
            throw Bad($"shape {TensorEntry.FormatShape(shape)} of {dtypeName} needs {expected} bytes but 'data_offsets' [{begin}, {end}] span {end - begin}");
        }
        if (end > dataLength)
        {
            throw Bad($"needs bytes [{begin}, {end}) of the data section but {path} has only {dataLength}; the file is truncated");
        }
        return new TensorEntry(name, dtypeName, shape, begin, end, path);
    }

    static long[] ReadIntegers(JsonElement entry, string field, Func<string, CheckpointException> bad)
    {
        if (!entry.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw bad($"header entry has no array '{field}'");
        }
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
            {
                throw bad($"'{field}' holds {item.GetRawText()}; expected non-negative integers");
            }
            values[i++] = v;
        }
        return values;
    }

    static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    /// <summary>One tensor as the writer lays it out.</summary>
    public sealed record Record(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End);

    /// <summary>
    /// The header bytes the reference library writes for <paramref name="records"/> (already in layout order):
    /// compact JSON, <c>__metadata__</c> first, padded with spaces to a multiple of 8 bytes.
    /// </summary>
    public static byte[] Serialize(IReadOnlyList<Record> records, IReadOnlyDictionary<string, string>? metadata)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        if (metadata is not null)
        {
            // The reference keeps metadata in a hash map (arbitrary order); sorting makes our files reproducible.
            JsonText.AppendString(sb, MetadataKey, asciiOnly: false);
            sb.Append(":{");
            bool firstItem = true;
            foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, JsonText.CodePointOrder))
            {
                if (!firstItem) sb.Append(',');
                firstItem = false;
                JsonText.AppendString(sb, key, asciiOnly: false);
                sb.Append(':');
                JsonText.AppendString(sb, value, asciiOnly: false);
            }
            sb.Append('}');
            first = false;
        }
        foreach (var r in records)
        {
            if (!first) sb.Append(',');
            first = false;
            JsonText.AppendString(sb, r.Name, asciiOnly: false);
            sb.Append(":{\"dtype\":");
            JsonText.AppendString(sb, r.DType.Name, asciiOnly: false);
            sb.Append(",\"shape\":[").AppendJoin(',', r.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            sb.Append("],\"data_offsets\":[").Append(r.Begin.ToString(CultureInfo.InvariantCulture)).Append(',')
              .Append(r.End.ToString(CultureInfo.InvariantCulture)).Append("]}");
        }
        sb.Append('}');
        int length = Encoding.UTF8.GetByteCount(sb.ToString());
        sb.Append(' ', (8 - length % 8) % 8);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}
