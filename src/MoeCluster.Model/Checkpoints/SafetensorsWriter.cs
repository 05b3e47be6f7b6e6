using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// Writes safetensors files the way the reference <c>safetensors</c> library does (tensors laid out by descending
/// dtype then name, compact header padded with spaces to 8 bytes), and sharded model directories the way
/// transformers' <c>save_pretrained</c> does. Files are written beside their target and renamed into place, so a
/// crash never leaves a half-written checkpoint under the real name.
/// </summary>
public static partial class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/>. With <paramref name="storeAs"/>, floating-point
    /// tensors are stored in that type; integer and bool tensors keep theirs.
    /// </summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, torch.ScalarType? storeAs = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = Plan(tensors, storeAs);
        WriteFile(Path.GetFullPath(path), items, metadata);
    }

    /// <summary>
    /// Writes a model directory as transformers does: shards of at most <paramref name="maxShardBytes"/> (a larger
    /// tensor gets a shard of its own) named <c>model-0000i-of-0000n.safetensors</c> plus
    /// <c>model.safetensors.index.json</c>; or a single <c>model.safetensors</c> when everything fits in one shard.
    /// Shards and index left by an earlier save that this one does not overwrite are deleted.
    /// </summary>
    public static void WriteSharded(string directory, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, long maxShardBytes,
        torch.ScalarType? storeAs = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(directory);
        var items = Plan(tensors, storeAs);
        var shards = Split(items, maxShardBytes);
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };

        var written = new HashSet<string>(StringComparer.Ordinal);
        if (shards.Count <= 1)
        {
            WriteFile(Path.Combine(directory, Checkpoint.SingleFileName), items, metadata);
            written.Add(Checkpoint.SingleFileName);
        }
        else
        {
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < shards.Count; i++)
            {
                string name = ShardFileName(i + 1, shards.Count);
                WriteFile(Path.Combine(directory, name), shards[i], metadata);
                written.Add(name);
                foreach (var item in shards[i]) weightMap[item.Name] = name;
            }
            long totalParameters = items.Sum(t => t.Tensor.numel());
            long totalSize = items.Sum(t => t.ByteLength);
            string index = CheckpointIndex.Format(totalParameters, totalSize, weightMap);
            WriteAtomically(Path.Combine(directory, Checkpoint.IndexFileName), stream => stream.Write(Encoding.UTF8.GetBytes(index)));
            written.Add(Checkpoint.IndexFileName);
        }
        RemoveStaleFiles(directory, written);
    }

    /// <summary><c>model-00001-of-00003.safetensors</c>: the shard names transformers uses.</summary>
    public static string ShardFileName(int number, int count) => $"model-{number:D5}-of-{count:D5}.safetensors";

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardName();

    static void RemoveStaleFiles(string directory, HashSet<string> written)
    {
        foreach (var path in System.IO.Directory.EnumerateFiles(directory))
        {
            string name = Path.GetFileName(path);
            bool ours = ShardName().IsMatch(name) || name == Checkpoint.SingleFileName || name == Checkpoint.IndexFileName;
            // A stale index would shadow a new model.safetensors, and a stale model.safetensors confuses other loaders.
            if (ours && !written.Contains(name)) File.Delete(path);
        }
    }

    sealed record Item(string Name, torch.Tensor Tensor, SafetensorsDType DType, long ByteLength);

    static List<Item> Plan(IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, torch.ScalarType? storeAs)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (storeAs is { } s && s is not (torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float32 or torch.ScalarType.Float64))
        {
            throw new ArgumentException($"storeAs must be a floating-point type, not {s}", nameof(storeAs));
        }
        var items = new List<Item>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("tensor names must be non-empty", nameof(tensors));
            if (name == SafetensorsHeader.MetadataKey) throw new ArgumentException($"'{name}' is reserved for metadata", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"tensor '{name}' is given twice", nameof(tensors));
            ArgumentNullException.ThrowIfNull(tensor, $"tensor '{name}'");
            var type = storeAs is { } target && tensor.is_floating_point() ? target : tensor.dtype;
            var dtype = SafetensorsDType.For(type);
            items.Add(new Item(name, tensor, dtype, dtype.ByteLength(tensor.numel())!.Value));
        }
        return items;
    }

    /// <summary>
    /// huggingface_hub's <c>split_state_dict_into_shards_factory</c>: walk tensors in the order given, start a new
    /// shard when the next one would overflow, and give a tensor larger than the limit a shard of its own.
    /// </summary>
    static List<List<Item>> Split(List<Item> items, long maxShardBytes)
    {
        var shards = new List<List<Item>>();
        var current = new List<Item>();
        long currentSize = 0;
        foreach (var item in items)
        {
            if (item.ByteLength > maxShardBytes)
            {
                shards.Add([item]);
                continue;
            }
            if (currentSize + item.ByteLength > maxShardBytes)
            {
                shards.Add(current);
                current = [];
                currentSize = 0;
            }
            current.Add(item);
            currentSize += item.ByteLength;
        }
        if (current.Count > 0) shards.Add(current);
        return shards;
    }

    static void WriteFile(string path, IReadOnlyList<Item> items, IReadOnlyDictionary<string, string>? metadata)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; this writer needs a little-endian machine");
        }
        // The reference layout: descending dtype (widest alignment first), then name.
        var ordered = items.OrderByDescending(i => i.DType.Rank).ThenBy(i => i.Name, JsonText.CodePointOrder).ToList();
        var records = new List<SafetensorsHeader.Record>(ordered.Count);
        long offset = 0;
        foreach (var item in ordered)
        {
            records.Add(new SafetensorsHeader.Record(item.Name, item.DType, item.Tensor.shape, offset, offset + item.ByteLength));
            offset += item.ByteLength;
        }
        byte[] header = SafetensorsHeader.Serialize(records, metadata);

        WriteAtomically(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var item in ordered)
            {
                using var scope = torch.NewDisposeScope();
                var bytes = item.Tensor.detach().to(item.DType.ScalarType!.Value, torch.CPU).contiguous();
                TensorBytes.Write(bytes, stream);
            }
        });
    }

    static void WriteAtomically(string path, Action<Stream> write)
    {
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }
}
