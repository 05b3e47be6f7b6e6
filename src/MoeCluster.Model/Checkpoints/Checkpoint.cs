using TorchSharp;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// The weights of a Hugging Face model directory: <c>model.safetensors.index.json</c> with its shards, or a single
/// <c>model.safetensors</c>, or the one <c>*.safetensors</c> file there. Shard files are opened on first use and
/// kept open, so a node that loads a few experts opens only the shards that hold them; a shard missing from disk is
/// reported when one of its tensors is asked for. Safe to read from several threads at once.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";

    readonly Dictionary<string, string> shardOf; // tensor name -> full path of the file that holds it
    readonly Dictionary<string, SafetensorsFile> opened = new(StringComparer.Ordinal);
    readonly Lock gate = new();
    bool disposed;

    Checkpoint(string directory, string? indexPath, Dictionary<string, string> shardOf, SafetensorsFile? single)
    {
        Directory = directory;
        IndexPath = indexPath;
        this.shardOf = shardOf;
        if (single is not null) opened[single.Path] = single;
        Names = shardOf.Keys.Order(StringComparer.Ordinal).ToArray();
        Files = shardOf.Values.Distinct().Order(StringComparer.Ordinal).ToArray();
    }

    public string Directory { get; }

    /// <summary>The index file of a sharded checkpoint; null for a single-file one.</summary>
    public string? IndexPath { get; }

    /// <summary>Tensor names, in ordinal order.</summary>
    public IReadOnlyCollection<string> Names { get; }

    /// <summary>Full paths of the safetensors files the checkpoint names.</summary>
    public IReadOnlyCollection<string> Files { get; }

    public static Checkpoint Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new CheckpointException($"checkpoint directory {directory} does not exist", directory);
        }

        string index = Path.Combine(directory, IndexFileName);
        if (File.Exists(index)) return OpenSharded(directory, index);

        string single = Path.Combine(directory, SingleFileName);
        if (!File.Exists(single))
        {
            var candidates = System.IO.Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
            if (candidates.Length == 0)
            {
                throw new CheckpointException(
                    $"no safetensors checkpoint in {directory}: expected {IndexFileName}, {SingleFileName} or one *.safetensors file", directory);
            }
            if (candidates.Length > 1)
            {
                throw new CheckpointException(
                    $"{directory} holds {candidates.Length} *.safetensors files ({string.Join(", ", candidates.Select(Path.GetFileName))}) "
                    + $"but no {IndexFileName} saying which tensor is in which", directory);
            }
            single = candidates[0];
        }
        var file = SafetensorsFile.Open(single);
        return new Checkpoint(directory, null, file.Tensors.Keys.ToDictionary(n => n, _ => file.Path, StringComparer.Ordinal), file);
    }

    static Checkpoint OpenSharded(string directory, string index)
    {
        var shardOf = new Dictionary<string, string>(StringComparer.Ordinal);
        string root = directory.EndsWith(Path.DirectorySeparatorChar) ? directory : directory + Path.DirectorySeparatorChar;
        foreach (var (name, shard) in CheckpointIndex.ReadWeightMap(index))
        {
            string path = Path.GetFullPath(Path.Combine(directory, shard));
            if (!path.StartsWith(root, StringComparison.Ordinal))
            {
                throw new CheckpointException($"index file {index} maps tensor '{name}' to '{shard}', outside the checkpoint directory", index, name);
            }
            shardOf[name] = path;
        }
        return new Checkpoint(directory, index, shardOf, null);
    }

    public bool Contains(string name) => shardOf.ContainsKey(name);

    public TensorEntry Entry(string name)
    {
        var file = FileHolding(name);
        if (!file.Tensors.TryGetValue(name, out var entry))
        {
            throw new CheckpointException(
                $"index file {IndexPath} maps tensor '{name}' to {file.Path}, but that shard does not contain it", file.Path, name);
        }
        return entry;
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> as <paramref name="dtype"/> on <paramref name="device"/> (CPU when null),
    /// checking its shape against <paramref name="expectedShape"/> first when given. The caller owns the result.
    /// </summary>
    public torch.Tensor Read(string name, torch.ScalarType dtype, torch.Device? device = null, long[]? expectedShape = null)
    {
        var entry = Entry(name);
        if (expectedShape is not null && !entry.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new CheckpointException(
                $"tensor '{name}' in {entry.FilePath} has shape {entry.ShapeText}; expected {TensorEntry.FormatShape(expectedShape)}",
                entry.FilePath, name);
        }
        return FileHolding(name).Read(entry, dtype, device);
    }

    SafetensorsFile FileHolding(string name)
    {
        if (!shardOf.TryGetValue(name, out var path))
        {
            throw new CheckpointException(NotFoundMessage(name), Directory, name);
        }
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (opened.TryGetValue(path, out var file)) return file;
            if (!File.Exists(path))
            {
                throw new CheckpointException(
                    $"tensor '{name}' is in shard {path} (per {IndexPath}), which does not exist; re-download the checkpoint", path, name);
            }
            file = SafetensorsFile.Open(path);
            opened[path] = file;
            return file;
        }
    }

    string NotFoundMessage(string name)
    {
        var files = string.Join(", ", Files.Select(Path.GetFileName));
        // Names sharing the longest prefix with the one asked for: usually the fix for a typo or a prefix mismatch.
        int Shared(string other) => name.Zip(other).TakeWhile(p => p.First == p.Second).Count();
        var near = Names.Select(n => (n, k: Shared(n))).Where(x => x.k > 0).OrderByDescending(x => x.k).ThenBy(x => x.n, StringComparer.Ordinal)
            .Take(3).Select(x => $"'{x.n}'").ToArray();
        var hint = near.Length > 0 ? $"; closest: {string.Join(", ", near)}" : "";
        return $"tensor '{name}' not found in checkpoint {Directory} ({Names.Count} tensors; files: {files}){hint}";
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            foreach (var file in opened.Values) file.Dispose();
            opened.Clear();
        }
    }
}
