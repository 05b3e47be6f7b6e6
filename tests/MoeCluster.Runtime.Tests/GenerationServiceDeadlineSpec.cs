using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Runtime.Tests;

/// <summary>Issue 11, point 4, on the caller's side of the gateway (<see cref="ClusterGenerationService"/>): a request
/// past its deadline ends with an error and gives its KV-cache slot back; a request held when the node's actor system
/// stops (the split-brain resolver downed the node) ends with an error instead of waiting for its deadline, and later
/// requests are refused as unavailable (503), not failed with an internal error.</summary>
public sealed class GenerationServiceDeadlineSpec(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(ProbeRegions.ClusterConfig, output: output)
{
    [Fact]
    public async Task A_request_past_its_deadline_ends_with_an_error_and_frees_its_slot()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = TimeSpan.FromSeconds(2), RequestTimeout = TimeSpan.FromSeconds(1) });
        regions.OnAttention = _ => null;                                      // the step never finishes
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("slow", [1, 2], 3));
        Assert.Equal(FinishReason.Error, f.Reason);
        Assert.Contains("did not finish within its 1s deadline", f.Error);
        // The service cancelled it at the gateway, which drops it when the step it is in ends (here: its retry after
        // the step timeout, once attention answers again); then nothing is left running or queued there.
        regions.OnAttention = ProbeRegions.Identity;
        await Poll.UntilAsync(async () => (await regions.Service.GetStatusAsync()) is { Running: 0, Waiting: 0 }, TimeSpan.FromSeconds(20), "the slot freed");
    }

    [Fact]
    public async Task A_request_held_when_the_actor_system_stops_is_answered_as_unavailable_at_once_and_so_are_later_ones()
    {
        var system = ActorSystem.Create("downed");
        try
        {
            // A gateway that accepts and never answers again, in an actor system of its own that the test stops.
            var gateway = system.ActorOf(Props.Create(() => new AcceptingGateway()));
            var service = new ClusterGenerationService(system, gateway, TinyModels.Config(Architecture.Mixtral), TimeSpan.FromMinutes(10));
            var held = service.GenerateToEndAsync(new GenerationRequest("held", [1, 2], 3));
            await Poll.UntilAsync(() => AcceptingGateway.Accepted > 0, TimeSpan.FromSeconds(10), "the request accepted");
            await system.Terminate();

            // It had streamed nothing, so it is answered as unavailable (resend elsewhere), and at once.
            var e = await Assert.ThrowsAsync<GatewayUnavailableException>(() => held.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Contains("gateway stopped", e.Message);
            var refused = await Assert.ThrowsAsync<GatewayUnavailableException>(() => service.GenerateToEndAsync(new GenerationRequest("late", [1], 1)));
            Assert.Contains("shutting down", refused.Message);
        }
        finally { await system.Terminate(); }
    }

    sealed class AcceptingGateway : ReceiveActor
    {
        public static int Accepted;

        public AcceptingGateway() => Receive<SubmitGeneration>(s =>
        {
            Sender.Tell(new GenerationAccepted(s.Request.Id));
            Interlocked.Increment(ref Accepted);
        });
    }
}
