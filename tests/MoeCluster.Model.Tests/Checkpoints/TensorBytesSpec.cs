using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

/// <summary>The chunked copy that tensors over 1 GiB take (a span stops at 2 GiB), driven here with tiny chunks.</summary>
public sealed class TensorBytesSpec : IDisposable
{
    readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Theory]
    [InlineData(4)]   // one element per chunk
    [InlineData(12)]  // chunks that do not divide the tensor
    [InlineData(6)]   // a chunk size that is not a multiple of the element size
    public void Chunked_write_and_fill_reproduce_the_tensor(long chunkBytes)
    {
        var path = dir.File("chunks.bin");
        using var original = torch.arange(10f).reshape(2, 5);
        using (var stream = File.Create(path))
        {
            stream.Write(new byte[3]); // the tensor starts at an odd offset, as it may inside a data section
            TensorBytes.Write(original, stream, chunkBytes);
        }
        var entry = new TensorEntry("t", "F32", [2, 5], 0, 40, path);
        using var target = torch.empty(new long[] { 2, 5 }, ScalarType.Float32);

        using (var handle = File.OpenHandle(path))
        {
            TensorBytes.Fill(target, handle, 3, entry, chunkBytes);
        }

        Assert.Equal(43, new FileInfo(path).Length);
        Assert.True(TensorAssert.Same(target, original));
    }

    [Fact]
    public void A_file_cut_short_after_opening_reports_the_tensor_and_truncation()
    {
        var path = dir.File("short.bin");
        File.WriteAllBytes(path, new byte[20]);
        var entry = new TensorEntry("t", "F32", [10], 0, 40, path);
        using var target = torch.empty(10);
        using var handle = File.OpenHandle(path);

        var error = Assert.Throws<CheckpointException>(() => TensorBytes.Fill(target, handle, 0, entry));

        Assert.Contains("tensor 't'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }
}
