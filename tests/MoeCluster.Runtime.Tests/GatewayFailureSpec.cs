using System.Diagnostics;
using Akka.Actor;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Runtime.Tests;

/// <summary>The gateway's failure paths, with TestKit probes standing in for the attention and expert shard regions:
/// failures answered by a layer are retried at once, a step that never finishes cannot hang a request, a stopped or
/// restarted gateway answers everything it holds (an error for what streamed, a hand-back for what did not), a drain's grace is enforced, and expert moves pause the steps.</summary>
public sealed class GatewayFailureSpec(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(ProbeRegions.ClusterConfig, output: output)
{
    static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task An_attention_failure_is_retried_at_once_and_the_request_completes_long_before_the_step_timeout()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long, ExpertTimeout = Long });
        int failures = 0;
        regions.OnAttention = m => failures++ < 2 ? new AttentionFailed(m.StepId, 0, "out of memory (probe)") : ProbeRegions.Identity(m);
        var clock = Stopwatch.StartNew();
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("r", [1, 2, 3], 4));
        Output!.WriteLine($"two attention failures, then success: finished in {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(FinishReason.Length, f.Reason);
        Assert.Equal(4, f.Generated.Count);
        Assert.True(clock.Elapsed < Long / 4, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_failure_that_repeats_on_every_attempt_ends_the_step_sequences_with_an_error_naming_it()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long, MaxStepAttempts = 3 });
        int attempts = 0;
        regions.OnAttention = m => { attempts++; return new AttentionFailed(m.StepId, AttentionEntity.Layer(m.EntityId), "CUDA out of memory (probe)"); };
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("r", [1, 2, 3], 4));
        Assert.Equal(FinishReason.Error, f.Reason);
        Assert.Contains("after 3 attempts", f.Error);
        Assert.Contains("CUDA out of memory", f.Error);
        Assert.Equal(3, attempts);
        // The gateway keeps serving once the fault is gone.
        regions.OnAttention = ProbeRegions.Identity;
        Assert.Equal(FinishReason.Length, (await regions.Service.GenerateToEndAsync(new GenerationRequest("after", [1], 2))).Reason);
    }

    [Fact]
    public async Task An_expert_failure_reaches_the_gateway_through_the_router_at_once()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long, ExpertTimeout = Long });
        int failures = 0;
        regions.OnExpert = m => Interlocked.Increment(ref failures) == 1
            ? new ExpertFailed(m.ExpertId, m.CorrelationId, "expert threw (probe)")
            : new ExpertComputed(m.ExpertId, m.CorrelationId, TensorPayload.Own(m.Input.Take()));
        var clock = Stopwatch.StartNew();
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("r", [5, 6], 3));
        Assert.Equal(FinishReason.Length, f.Reason);
        Assert.True(clock.Elapsed < Long / 4, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_step_whose_layers_never_answer_times_out_and_its_request_fails_instead_of_hanging()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = TimeSpan.FromMilliseconds(300), MaxStepAttempts = 2 });
        regions.OnAttention = _ => null;
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("r", [1, 2], 3));
        Assert.Equal(FinishReason.Error, f.Reason);
        Assert.Contains("did not finish within", f.Error);
    }

    [Fact]
    public async Task Stopping_the_gateway_hands_back_the_requests_it_had_not_streamed_running_or_queued()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", Batching = new BatchingOptions { MaxBatchSize = 1, ContextLength = 32 } });
        regions.OnAttention = _ => null;                                      // the running step never finishes
        var running = regions.Service.GenerateToEndAsync(new GenerationRequest("running", [1, 2], 3));
        var queued = regions.Service.GenerateToEndAsync(new GenerationRequest("queued", [3], 3));
        await Poll.UntilAsync(async () => (await regions.Service.GetStatusAsync()) is { Running: 1, Waiting: 1 });
        Sys.Stop(regions.Gateway);
        // Neither has seen an event, so both are resent elsewhere (503 + Retry-After at the HTTP layer), not failed.
        Assert.Contains("gateway stopped", (await Assert.ThrowsAsync<GatewayUnavailableException>(() => running)).Message);
        Assert.Contains("gateway stopped", (await Assert.ThrowsAsync<GatewayUnavailableException>(() => queued)).Message);
        // A stopped gateway refuses at once instead of leaving the caller waiting.
        await Assert.ThrowsAsync<GatewayUnavailableException>(() => regions.Service.GenerateToEndAsync(new GenerationRequest("late", [1], 1)));
    }

    [Fact]
    public void Stopping_the_gateway_ends_a_running_request_that_already_streamed_with_an_error_holding_its_tokens()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long });
        // A request's first step (its prefill, from position 0) is answered; its decode steps never are.
        regions.OnAttention = m => m.Layout.Segments.All(s => s.Start == 0) ? ProbeRegions.Identity(m) : null;
        var client = CreateTestProbe();
        regions.Gateway.Tell(new SubmitGeneration(new GenerationRequest("r", [1, 2], 5)), client.Ref);
        client.ExpectMsg<GenerationAccepted>(Long);
        var first = client.ExpectMsg<TokenGenerated>(Long);
        Sys.Stop(regions.Gateway);
        var f = client.ExpectMsg<SequenceFinished>(Long);
        Assert.Equal(FinishReason.Error, f.Reason);
        Assert.Contains("gateway stopped", f.Error);
        Assert.Equal([first.Token], f.Generated);
    }

    [Fact]
    public async Task A_gateway_restarted_by_a_crash_answers_what_it_held_and_serves_again()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "" }, restartOnFailure: true);
        regions.OnAttention = _ => null;
        var running = regions.Service.GenerateToEndAsync(new GenerationRequest("running", [1, 2], 3));
        await Poll.UntilAsync(async () => (await regions.Service.GetStatusAsync()).Running == 1);
        regions.Gateway.Tell(Kill.Instance);                                   // its supervisor restarts it
        // It had streamed nothing: handed back to be resent (here or elsewhere), not failed.
        Assert.Contains("gateway stopped", (await Assert.ThrowsAsync<GatewayUnavailableException>(() => running)).Message);
        regions.OnAttention = ProbeRegions.Identity;
        Assert.Equal(FinishReason.Length, (await regions.Service.GenerateToEndAsync(new GenerationRequest("after", [1], 2))).Reason);
    }

    [Fact]
    public async Task An_answer_for_a_layer_the_step_is_not_at_is_refused_and_the_step_retried()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long });
        int answers = 0;
        // The first answer claims to be from layer 7 (the model has 2): a crash of the gateway before this was refused.
        regions.OnAttention = m => answers++ == 0 ? ProbeRegions.Identity(m) with { Layer = 7 } : ProbeRegions.Identity(m);
        var f = await regions.Service.GenerateToEndAsync(new GenerationRequest("r", [1, 2], 2));
        Assert.Equal(FinishReason.Length, f.Reason);
    }

    [Fact]
    public async Task When_the_drain_grace_ends_a_step_that_never_finishes_is_abandoned_and_its_request_handed_back()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long });
        regions.OnAttention = _ => null;
        var running = regions.Service.GenerateToEndAsync(new GenerationRequest("running", [1, 2], 3));
        await Poll.UntilAsync(async () => (await regions.Service.GetStatusAsync()).Running == 1);
        var drained = await regions.Gateway.Ask<GatewayDrained>(new DrainGateway(TimeSpan.FromMilliseconds(200)), TimeSpan.FromSeconds(10));
        Assert.Equal(new GatewayDrained(0, 0, 1), drained);
        // It never produced anything: resent elsewhere, not failed.
        Assert.Contains("drain grace", (await Assert.ThrowsAsync<GatewayUnavailableException>(() => running)).Message);
    }

    [Fact]
    public async Task A_drain_hands_back_the_requests_that_streamed_nothing_and_fails_a_preempted_one_that_already_streamed()
    {
        var batching = new BatchingOptions { MaxBatchSize = 1, ContextLength = 240 };
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "", StepTimeout = Long, Batching = batching });
        bool hangPrefills = false, holdDecodes = true;
        // A step that prefills from position 0 (a request's first) is answered until hangPrefills; a decode step is
        // held (left in the probe's queue unanswered) while holdDecodes.
        regions.OnAttention = m => m.Layout.Segments.Any(s => s.Start == 0)
            ? (hangPrefills ? null : ProbeRegions.Identity(m))
            : (holdDecodes ? null : ProbeRegions.Identity(m));
        var job = CreateTestProbe();
        var chat = CreateTestProbe();
        var queued = CreateTestProbe();
        regions.Gateway.Tell(new SubmitGeneration(new GenerationRequest("job", [1, 2, 3], 200) { Priority = 10 }), job.Ref);
        job.ExpectMsg<GenerationAccepted>(Long);
        job.ExpectMsg<TokenGenerated>(Long);                                   // its prefill sampled a first token
        var heldDecode = regions.Attention.FishForMessage<AttentionStep>(m => m.Layout.Segments.All(s => s.Start > 0), Long);
        hangPrefills = true;
        regions.Gateway.Tell(new SubmitGeneration(new GenerationRequest("chat", [2, 7], 4)), chat.Ref);
        chat.ExpectMsg<GenerationAccepted>(Long);
        regions.Gateway.Tell(new SubmitGeneration(new GenerationRequest("queued", [4, 5], 4) { Priority = 20 }), queued.Ref);
        queued.ExpectMsg<GenerationAccepted>(Long);
        // The job's decode step ends; the chat outranks the job and takes the only slot, whose prefill never finishes;
        // the job waits preempted, the queued request behind it.
        holdDecodes = false;
        regions.Gateway.Tell(ProbeRegions.Identity(heldDecode));
        regions.Attention.FishForMessage<AttentionStep>(m => m.Layout.Segments.Any(s => s.Start == 0 && s.Length == 2), Long);   // the chat's prefill
        Assert.Equal(2, (await regions.Service.GetStatusAsync()).Waiting);

        var drained = regions.Gateway.Ask<GatewayDrained>(new DrainGateway(TimeSpan.FromMilliseconds(300)), Long);
        var handedBack = queued.ExpectMsg<GenerationRejected>(Long);
        Assert.Equal(RejectionKind.Draining, handedBack.Kind);
        Assert.Contains("did not start this request", handedBack.Message);
        var preempted = job.FishForMessage<SequenceFinished>(_ => true, Long);
        Assert.Equal(FinishReason.Error, preempted.Reason);
        Assert.NotEmpty(preempted.Generated);                              // what it streamed is in its answer
        // The chat's prefill never finished: when the grace ends it is handed back too, having streamed nothing.
        var chatBack = chat.ExpectMsg<GenerationRejected>(Long);
        Assert.Equal(RejectionKind.Draining, chatBack.Kind);
        Assert.Contains("drain grace", chatBack.Message);
        Assert.Equal(new GatewayDrained(0, 1, 2), await drained);
        queued.ExpectNoMsg(TimeSpan.FromMilliseconds(200));               // a refusal is its only answer
    }

    [Fact]
    public async Task Expert_moves_wait_for_the_step_in_flight_and_no_step_starts_until_the_experts_answer_from_their_new_home()
    {
        using var regions = new ProbeRegions(this, new RuntimeOptions { ModelDirectory = "" });
        var release = new TaskCompletionSource();
        var held = new List<(IActorRef, AttentionStep)>();
        // Hold the first step at layer 0 until the test releases it.
        regions.OnAttention = m => release.Task.IsCompleted ? ProbeRegions.Identity(m) : null;
        var request = regions.Service.GenerateToEndAsync(new GenerationRequest("r", [1, 2], 2));
        var first = regions.Attention.FishForMessage<AttentionStep>(_ => true, Long);

        var watcher = CreateTestProbe();
        regions.Gateway.Tell(new PlacementWatcherActor.ExpertsMoving(new Dictionary<string, string> { ["L0.E1"] = "akka.tcp://moecluster@10.0.0.1:4053" }), watcher);
        watcher.ExpectNoMsg(TimeSpan.FromMilliseconds(300));                  // a step is in flight: no acknowledgement yet

        release.SetResult();
        regions.Gateway.Tell(ProbeRegions.Identity(first));                     // the held layer answers; the step goes on and ends
        watcher.ExpectMsg<PlacementWatcherActor.ExpertsMovingAcknowledged>(Long);
        // The expert still answers from the node it left: the next step waits.
        Assert.Contains("moving experts", (await regions.Service.GetStatusAsync()).Detail);
        regions.ExpertNode = _ => "akka.tcp://moecluster@10.0.0.2:4053";    // now it answers from its new home
        var f = await request;
        Assert.Equal(FinishReason.Length, f.Reason);
        Assert.Equal(2, f.Generated.Count);
    }
}
