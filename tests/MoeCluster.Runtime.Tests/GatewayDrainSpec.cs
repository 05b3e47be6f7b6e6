using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>The drain contract a node's shutdown relies on: stop admitting, hand the queue back to be resent elsewhere,
/// let the running sequences finish within the grace, fail the rest, then say so.</summary>
public class GatewayDrainSpec
{
    static async Task<(InProcessNode node, IGenerationService service, IActorRef gateway)> StartAsync()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var batching = new BatchingOptions { MaxBatchSize = 1, ContextLength = 240 };
        var node = (await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = batching }, 1))[0];
        return (node, await node.WaitUntilReadyAsync(), node.Registry.Get<GatewayKey>());
    }

    [Fact]
    public async Task A_draining_gateway_refuses_new_requests_hands_the_queued_ones_back_and_lets_the_running_one_finish()
    {
        var (node, service, gateway) = await StartAsync();
        await using var _ = node;
        var running = service.GenerateAsync(new GenerationRequest("running", [1, 2, 3], 200)).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());                          // it holds the only slot
        var queued = service.GenerateToEndAsync(new GenerationRequest("queued", [4, 5], 3));
        await Poll.UntilAsync(async () => (await service.GetStatusAsync()).Waiting == 1);

        var drained = gateway.Ask<GatewayDrained>(new DrainGateway(TimeSpan.FromSeconds(120)), TimeSpan.FromSeconds(150));
        // Queued, it was accepted but never started: it is handed back as if refused at the door, so the HTTP layer
        // answers 503 + Retry-After (or a job defers the line) instead of a 500 the client cannot tell from a failure.
        var refused = await Assert.ThrowsAsync<GatewayUnavailableException>(() => queued);
        Assert.Contains("draining", refused.Message);
        var late = await Assert.ThrowsAsync<GatewayUnavailableException>(() => service.GenerateToEndAsync(new GenerationRequest("late", [6], 3)));
        Assert.Contains("draining", late.Message);

        int tokens = 1;
        SequenceFinished? finished = null;
        while (await running.MoveNextAsync())
            if (running.Current is TokenGenerated) tokens++;
            else if (running.Current is SequenceFinished f) finished = f;
        Assert.Equal(FinishReason.Length, finished!.Reason);
        Assert.Equal(200, tokens);
        Assert.Equal(new GatewayDrained(1, 0, 1), await drained);
        // Drained stays closed, and asking again answers at once.
        Assert.Equal(new GatewayDrained(1, 0, 1), await gateway.Ask<GatewayDrained>(new DrainGateway(TimeSpan.Zero), TimeSpan.FromSeconds(5)));
        await Assert.ThrowsAsync<GatewayUnavailableException>(() => service.GenerateToEndAsync(new GenerationRequest("later", [6], 3)));
    }

    [Fact]
    public async Task When_the_grace_ends_the_sequences_still_running_end_with_an_error_and_the_drain_completes()
    {
        var (node, service, gateway) = await StartAsync();
        await using var _ = node;
        var running = service.GenerateAsync(new GenerationRequest("long", [1, 2, 3], 230)).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());                          // it has streamed its first token

        var drained = await gateway.Ask<GatewayDrained>(new DrainGateway(TimeSpan.Zero), TimeSpan.FromSeconds(30));
        SequenceFinished? failed = null;
        while (await running.MoveNextAsync()) failed = running.Current as SequenceFinished ?? failed;
        Assert.Equal(FinishReason.Error, failed!.Reason);
        Assert.Contains("drain grace", failed.Error);
        Assert.Equal(new GatewayDrained(0, 1, 0), drained);
    }
}
