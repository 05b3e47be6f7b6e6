using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// One <c>.safetensors</c> file: an 8-byte little-endian header length N, N bytes of JSON header, then the data
/// section. Opening reads and validates the header only; <see cref="Read"/> reads exactly one tensor's bytes by
/// offset, so a node that serves one expert never touches the rest. Reads are safe from several threads at once.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    readonly SafeFileHandle handle;
    readonly long dataStart;

    SafetensorsFile(string path, SafeFileHandle handle, long dataStart, SafetensorsHeader.Parsed header)
    {
        Path = path;
        this.handle = handle;
        this.dataStart = dataStart;
        Tensors = header.Tensors;
        Metadata = header.Metadata;
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> (transformers writes <c>{"format": "pt"}</c>); empty when absent.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException($"safetensors file {path} does not exist", path, inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"cannot open safetensors file {path}: {e.Message}", path, inner: e);
        }
        try
        {
            var (dataStart, header) = ReadHeader(handle, path);
            return new SafetensorsFile(path, handle, dataStart, header);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    static (long DataStart, SafetensorsHeader.Parsed Header) ReadHeader(SafeFileHandle handle, string path)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
        {
            throw new CheckpointException(
                $"{path} is {fileLength} bytes long; a safetensors file starts with an 8-byte header length, so it is truncated or not safetensors", path);
        }
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(handle, prefix, 0, path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > SafetensorsHeader.MaxHeaderBytes)
        {
            throw new CheckpointException(
                $"{path} declares a {headerLength}-byte header, over the {SafetensorsHeader.MaxHeaderBytes}-byte limit; the file is corrupt or not safetensors", path);
        }
        if ((long)headerLength > fileLength - 8)
        {
            throw new CheckpointException(
                $"{path} declares a {headerLength}-byte header but has only {fileLength - 8} bytes after the length prefix; the file is truncated or not safetensors", path);
        }
        var json = new byte[headerLength];
        ReadExactly(handle, json, 8, path);
        long dataStart = 8 + (long)headerLength;
        return (dataStart, SafetensorsHeader.Parse(json, path, fileLength - dataStart));
    }

    static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path)
    {
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read == 0)
            {
                throw new CheckpointException($"{path} ended at byte {offset} while reading its header; the file is truncated", path);
            }
            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> and converts it to <paramref name="dtype"/> on <paramref name="device"/>
    /// (CPU when null). The caller owns the result.
    /// </summary>
    public torch.Tensor Read(string name, torch.ScalarType dtype, torch.Device? device = null)
    {
        if (!Tensors.TryGetValue(name, out var entry))
        {
            throw new CheckpointException($"tensor '{name}' not found in {Path} ({Tensors.Count} tensors)", Path, name);
        }
        return Read(entry, dtype, device);
    }

    internal torch.Tensor Read(TensorEntry entry, torch.ScalarType dtype, torch.Device? device)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        var stored = SafetensorsDType.Parse(entry.DType).ScalarType
            ?? throw new CheckpointException(
                $"tensor '{entry.Name}' in {Path} is stored as {entry.DType}, which TorchSharp has no tensor type for", Path, entry.Name);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; this reader needs a little-endian machine");
        }

        using var scope = torch.NewDisposeScope();
        // Read in the on-disk type straight into tensor memory, then let libtorch convert in one vectorised pass.
        var raw = torch.empty(entry.Shape, stored);
        TensorBytes.Fill(raw, handle, dataStart + entry.Begin, entry);
        bool onCpu = device is null || device.type == DeviceType.CPU;
        var result = stored == dtype && onCpu ? raw : raw.to(dtype, device ?? torch.CPU);
        return result.MoveToOuterDisposeScope();
    }

    public void Dispose() => handle.Dispose();
}
