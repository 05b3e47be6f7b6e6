using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// Moves raw little-endian tensor bytes between files and CPU tensor memory without a managed copy: the tensor's own
/// storage is the read buffer and the write source. Spans are limited to 2 GiB, so large tensors go in chunks of a
/// flat view.
/// </summary>
internal static class TensorBytes
{
    internal const long ChunkBytes = 1L << 30;

    /// <summary>Fills contiguous CPU tensor <paramref name="target"/> from the file at <paramref name="fileOffset"/>.</summary>
    public static void Fill(torch.Tensor target, SafeFileHandle file, long fileOffset, TensorEntry entry, long chunkBytes = ChunkBytes)
    {
        long elementSize = target.element_size();
        long elements = target.numel();
        if (elements == 0) return;
        using var flat = target.view(-1);
        long chunk = Math.Max(1, chunkBytes / elementSize);
        for (long first = 0; first < elements; first += chunk)
        {
            using var part = flat.narrow(0, first, Math.Min(chunk, elements - first));
            ReadExactly(file, part.bytes, fileOffset + first * elementSize, entry);
        }
    }

    static void ReadExactly(SafeFileHandle file, Span<byte> buffer, long offset, TensorEntry entry)
    {
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(file, buffer, offset);
            if (read == 0)
            {
                throw new CheckpointException(
                    $"{entry.FilePath} ended at byte {offset} while reading tensor '{entry.Name}'; the file is truncated (was it modified after opening?)",
                    entry.FilePath, entry.Name);
            }
            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>Writes contiguous CPU tensor <paramref name="source"/>'s bytes to <paramref name="stream"/>.</summary>
    public static void Write(torch.Tensor source, Stream stream, long chunkBytes = ChunkBytes)
    {
        long elementSize = source.element_size();
        long elements = source.numel();
        if (elements == 0) return;
        using var flat = source.view(-1);
        long chunk = Math.Max(1, chunkBytes / elementSize);
        for (long first = 0; first < elements; first += chunk)
        {
            using var part = flat.narrow(0, first, Math.Min(chunk, elements - first));
            stream.Write(part.bytes);
        }
    }
}
