using System.Buffers.Binary;
using System.Text;

namespace MoeCluster.Model.Tests.Checkpoints;

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory() => System.IO.Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"moecluster-ckpt-{Guid.NewGuid():N}");

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Path)) System.IO.Directory.Delete(Path, recursive: true);
    }
}

/// <summary>Safetensors files built byte by byte, independent of the writer under test.</summary>
public static class RawSafetensors
{
    public static byte[] Build(string headerJson, byte[] data, ulong? declaredHeaderLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    /// <summary>The 8-byte length prefix and the header text of a safetensors file.</summary>
    public static (ulong Length, string Header) ReadHeader(string path)
    {
        var bytes = System.IO.File.ReadAllBytes(path);
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return (length, Encoding.UTF8.GetString(bytes, 8, (int)length));
    }
}

public static class TensorAssert
{
    /// <summary>Same dtype, shape and every element.</summary>
    public static bool Same(TorchSharp.torch.Tensor actual, TorchSharp.torch.Tensor expected) =>
        actual.dtype == expected.dtype && actual.shape.SequenceEqual(expected.shape) && actual.Equals(expected);
}
