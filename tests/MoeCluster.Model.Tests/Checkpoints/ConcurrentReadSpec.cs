using MoeCluster.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Checkpoints;

public sealed class ConcurrentReadSpec : IDisposable
{
    readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Threads_reading_the_same_sharded_checkpoint_at_once_each_get_the_right_data()
    {
        const int tensorCount = 12, threads = 8, rounds = 10;
        // Tensor i holds i*1000 + [0, 256): every value says which tensor (and element) it came from.
        var tensors = Enumerable.Range(0, tensorCount)
            .Select(i => new KeyValuePair<string, Tensor>($"experts.{i}.w", torch.arange(i * 1000f, i * 1000f + 256f, 1f).reshape(16, 16)))
            .ToList();
        SafetensorsWriter.WriteSharded(dir.Path, tensors, maxShardBytes: 3 * 256 * 4);
        foreach (var t in tensors) t.Value.Dispose();

        using var checkpoint = Checkpoint.Open(dir.Path);
        Assert.Equal(4, checkpoint.Files.Count);
        var start = new Barrier(threads);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();

        var workers = Enumerable.Range(0, threads).Select(worker => new Thread(() =>
        {
            start.SignalAndWait(); // all threads race for the first (lazy) opening of every shard
            try
            {
                ReadAll(worker);
            }
            catch (Exception e)
            {
                failures.Add($"thread {worker}: {e}");
            }
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());

        Assert.Empty(failures);

        void ReadAll(int worker)
        {
            for (int round = 0; round < rounds; round++)
            {
                for (int k = 0; k < tensorCount; k++)
                {
                    int i = (k + worker * 5 + round) % tensorCount;
                    using var scope = torch.NewDisposeScope();
                    var read = checkpoint.Read($"experts.{i}.w", ScalarType.Float32, expectedShape: [16, 16]);
                    var expected = torch.arange(i * 1000f, i * 1000f + 256f, 1f).reshape(16, 16);
                    if (!TensorAssert.Same(read, expected)) failures.Add($"thread {worker} round {round}: experts.{i}.w differs");
                }
            }
        }
    }
}
