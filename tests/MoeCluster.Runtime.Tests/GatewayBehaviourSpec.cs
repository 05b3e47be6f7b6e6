using System.Diagnostics;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Runtime.Tests;

/// <summary>Runs alone: the memory test measures the whole test process, which parallel tests would disturb.</summary>
[CollectionDefinition(nameof(GatewayBehaviourSpec), DisableParallelization = true)]
public sealed class GatewayBehaviourCollection;

[Collection(nameof(GatewayBehaviourSpec))]
public class GatewayBehaviourSpec(ITestOutputHelper output)
{
    static async Task<(InProcessNode node, IGenerationService service)> StartAsync(BatchingOptions batching, Architecture a = Architecture.Mixtral)
    {
        using var model = TinyModels.Random(a);
        var checkpoint = TinyCheckpoint.Write(model);
        var node = (await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = batching }, 1))[0];
        return (node, await node.WaitUntilReadyAsync());
    }

    [Fact]
    public async Task A_full_queue_gets_the_overloaded_reply_and_a_cancelled_request_frees_its_kv_cache()
    {
        var (node, service) = await StartAsync(new BatchingOptions { MaxBatchSize = 1, MaxQueuedRequests = 1, ContextLength = 240 });
        await using var _ = node;
        using var cancelA = new CancellationTokenSource();
        var a = service.GenerateAsync(new GenerationRequest("a", [1, 2, 3], 200), cancelA.Token).GetAsyncEnumerator();
        Assert.True(await a.MoveNextAsync());                                   // "a" is running: it holds the only slot
        var status = await service.GetStatusAsync();
        Assert.Equal(1, status.Running);
        Assert.True(status.KvCacheBytesInUse > 0);

        var b = service.GenerateToEndAsync(new GenerationRequest("b", [4, 5], 3));   // waits in the queue
        await Poll.UntilAsync(async () => (await service.GetStatusAsync()).Waiting == 1);
        var rejected = await Assert.ThrowsAsync<GatewayOverloadedException>(() => service.GenerateToEndAsync(new GenerationRequest("c", [6], 3)));
        Assert.Contains("queue is full", rejected.Message);

        cancelA.Cancel();
        try { while (await a.MoveNextAsync()) { } } catch (OperationCanceledException) { }
        var finishedB = await b;                                                 // "b" got the freed slot
        Assert.Equal(3, finishedB.Generated.Count);
        await Poll.UntilAsync(async () => (await service.GetStatusAsync()) is { Running: 0, KvCacheBytesInUse: 0 });
    }

    [Fact]
    public async Task Invalid_requests_are_refused_with_the_field_named_and_the_gateway_keeps_serving()
    {
        var (node, service) = await StartAsync(new BatchingOptions { MaxBatchSize = 2, ContextLength = 32 });
        await using var _ = node;
        var e = await Assert.ThrowsAsync<InvalidGenerationRequestException>(() => service.GenerateToEndAsync(new GenerationRequest("x", [1, 2], 40)));
        Assert.Equal("max_tokens", e.Field);
        Assert.Equal(FinishReason.Length, (await service.GenerateToEndAsync(new GenerationRequest("y", [1, 2], 4))).Reason);
    }

    [Fact]
    public async Task Process_memory_stays_flat_over_ten_thousand_decode_steps()
    {
        var (node, service) = await StartAsync(new BatchingOptions { MaxBatchSize = 4, ContextLength = 260 }, Architecture.Qwen2Moe);
        await using var _ = node;
        const int rounds = 40, tokens = 250, concurrent = 4;            // 40 × 250 = 10,000 decode steps of 4 sequences
        long afterWarmUp = 0;
        var clock = Stopwatch.StartNew();
        for (int round = 0; round < rounds; round++)
        {
            var results = await Task.WhenAll(Enumerable.Range(0, concurrent).Select(i =>
                service.GenerateToEndAsync(new GenerationRequest($"r{round}-{i}", [1 + i, 2, 3], tokens))));
            Assert.All(results, r => Assert.Equal(tokens, r.Generated.Count));
            if (round == 3) afterWarmUp = Process.GetCurrentProcess().WorkingSet64;
        }
        long end = Process.GetCurrentProcess().WorkingSet64;
        double growthMb = (end - afterWarmUp) / 1048576.0;
        output.WriteLine($"{rounds * tokens} steps in {clock.Elapsed.TotalSeconds:0.0}s; RSS after warm-up {afterWarmUp / 1048576.0:0} MB, at end {end / 1048576.0:0} MB, growth {growthMb:0.0} MB");
        // A leak of one activation per step (4 × 32 floats) would add ~5 MB; one per layer per step, tens of MB.
        Assert.True(growthMb < 48, $"RSS grew {growthMb:0.0} MB over {(rounds - 4) * tokens} decode steps");
    }
}
