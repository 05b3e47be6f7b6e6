using System.Collections.Immutable;
using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Attention;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Routing;
using Akka.TestKit;
using MoeCluster.Runtime.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>Every actor on the token path answers a failure at once — a malformed message or an exception never goes
/// unanswered, never restarts the actor, and never loses its state — with probes standing in for its requester and
/// for the shard region and expert hosts it talks to.</summary>
public sealed class TokenPathFailureSpec : Akka.TestKit.Xunit2.TestKit
{
    static readonly TimeSpan Quick = TimeSpan.FromSeconds(10);
    readonly string checkpoint;
    readonly ModelSource model;
    int Hidden => model.Config.HiddenSize;

    public TokenPathFailureSpec(ITestOutputHelper output) : base(ProbeRegions.ClusterConfig, output: output)
    {
        using (var m = TinyModels.Random(Architecture.Mixtral)) checkpoint = TinyCheckpoint.Write(m);
        model = new ModelSource(checkpoint, ModuleOptions.Cpu32);
    }

    static TensorPayload Rows(int n, int width) => TensorPayload.Own(randn([n, width]));

    [Fact]
    public void An_attention_entity_refuses_malformed_steps_and_a_throwing_step_and_keeps_its_kv_cache()
    {
        var faults = new FaultInjector();
        var attention = Sys.ActorOf(AttentionActor.Props(AttentionEntity.Id("gw", 0), model, faults));
        attention.Tell(new StartAttention(AttentionEntity.Id("gw", 0), 2, 16));
        ExpectMsg<AttentionStarted>(Quick);
        attention.Tell(new AttentionStep("gw@L0", 1, StepLayout.Single(0, 0, 3), Rows(3, Hidden)));   // prefill 3 positions of slot 0
        ExpectMsg<AttentionComputed>(Quick).Normed.Take().Dispose();
        double rejected = MoeMetrics.RejectedFrames.WithLabels("inconsistent").Value;

        attention.Tell(new AttentionStep("gw@L0", 2, StepLayout.Single(9, 0, 1), Rows(1, Hidden)));   // no slot 9
        Assert.Contains("slot 9", ExpectMsg<AttentionFailed>(Quick).Reason);
        attention.Tell(new AttentionStep("gw@L0", 3, StepLayout.Single(1, 10, 8), Rows(8, Hidden)));  // past the context
        Assert.Contains("positions", ExpectMsg<AttentionFailed>(Quick).Reason);
        attention.Tell(new AttentionStep("gw@L0", 4, StepLayout.Single(1, 0, 2), Rows(3, Hidden)));   // rows ≠ layout
        Assert.Contains("layout covers 2 tokens", ExpectMsg<AttentionFailed>(Quick).Reason);
        attention.Tell(new AttentionStep("gw@L0", 5, StepLayout.Single(1, 0, 1), Rows(1, Hidden + 1)));
        Assert.Contains($"[tokens, {Hidden}]", ExpectMsg<AttentionFailed>(Quick).Reason);
        Assert.True(MoeMetrics.RejectedFrames.WithLabels("inconsistent").Value >= rejected + 4);

        faults.Arm(FaultSite.Attention);
        attention.Tell(new AttentionStep("gw@L0", 6, new StepLayout([new SequenceSegment(0, 3, 1)]), Rows(1, Hidden)));
        var failed = ExpectMsg<AttentionFailed>(Quick);
        Assert.Equal(6, failed.StepId);
        Assert.Contains("injected fault", failed.Reason);

        // Slot 0 still holds its 3 positions: decoding position 3 works (a restarted entity would answer CacheMissing).
        attention.Tell(new AttentionStep("gw@L0", 7, new StepLayout([new SequenceSegment(0, 3, 1)]), Rows(1, Hidden)));
        var computed = ExpectMsg<AttentionComputed>(Quick);
        Assert.Equal(7, computed.StepId);
        computed.Residual.Take().Dispose(); computed.Normed.Take().Dispose();
    }

    [Fact]
    public void An_expert_answers_rows_of_the_wrong_width_and_a_throwing_computation_with_ExpertFailed_and_keeps_serving()
    {
        var faults = new FaultInjector();
        var expert = Sys.ActorOf(ExpertActor.Props("L0.E1", model, faults));
        expert.Tell(new ComputeExpert("L0.E1", 1, Rows(2, Hidden - 1)));
        Assert.Equal(1, ExpectMsg<ExpertFailed>(Quick).CorrelationId);
        faults.Arm(FaultSite.Expert, target: "L0.E1");
        expert.Tell(new ComputeExpert("L0.E1", 2, Rows(2, Hidden)));
        Assert.Contains("injected fault", ExpectMsg<ExpertFailed>(Quick).Reason);
        expert.Tell(new ComputeExpert("L0.E1", 3, Rows(2, Hidden)));
        var ok = ExpectMsg<ExpertComputed>(Quick);
        Assert.Equal(new long[] { 2, Hidden }, ok.Output.Shape);
        ok.Output.Take().Dispose();
    }

    [Fact]
    public void An_expert_host_reports_a_failed_expert_at_once_and_forgets_calls_nobody_waits_for()
    {
        var region = CreateTestProbe();
        var router = CreateTestProbe();
        var host = Sys.ActorOf(ExpertHostActor.Props(region.Ref, model, TimeSpan.FromMilliseconds(300)));

        host.Tell(new DispatchTokens(10, 0, [new ExpertInput(1, Rows(2, Hidden)), new ExpertInput(4, Rows(1, Hidden))]), router.Ref);
        var first = region.ExpectMsg<ComputeExpert>(Quick);
        var second = region.ExpectMsg<ComputeExpert>(Quick);
        host.Tell(new ExpertFailed(second.ExpertId, second.CorrelationId, "expert L0.E4: out of memory"), region.Ref);
        var failed = router.ExpectMsg<DispatchFailed>(Quick);
        Assert.Equal(10, failed.DispatchId);
        Assert.Equal([1], failed.Items);
        // The other item's answer, arriving later, is released: the call was already answered.
        host.Tell(new ExpertComputed(first.ExpertId, first.CorrelationId, TensorPayload.Own(first.Input.Take())), region.Ref);
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(200));

        // A call whose expert never answers is answered with DispatchFailed after twice the expert timeout, and forgotten.
        host.Tell(new DispatchTokens(11, 0, [new ExpertInput(2, Rows(1, Hidden))]), router.Ref);
        var lost = region.ExpectMsg<ComputeExpert>(Quick);
        var evicted = router.ExpectMsg<DispatchFailed>(Quick);
        Assert.Equal(11, evicted.DispatchId);
        Assert.Contains("did not answer", evicted.Reason);
        host.Tell(new ExpertComputed(lost.ExpertId, lost.CorrelationId, TensorPayload.Own(lost.Input.Take())), region.Ref);
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void An_expert_host_refuses_a_batch_for_a_layer_or_expert_the_model_does_not_have()
    {
        var region = CreateTestProbe();
        var host = Sys.ActorOf(ExpertHostActor.Props(region.Ref, model, Quick));
        host.Tell(new DispatchTokens(1, 7, [new ExpertInput(0, Rows(1, Hidden))]));
        Assert.Contains("layer 7", ExpectMsg<DispatchFailed>(Quick).Reason);
        host.Tell(new DispatchTokens(2, 0, [new ExpertInput(0, Rows(1, Hidden)), new ExpertInput(99, Rows(1, Hidden))]));
        var failed = ExpectMsg<DispatchFailed>(Quick);
        Assert.Equal(new[] { 1 }, failed.Items);
        region.ExpectNoMsg(TimeSpan.FromMilliseconds(100));                  // nothing of a refused batch reaches an expert
    }

    /// <summary>A router whose every expert lives on "this node", whose expert host is <paramref name="hostProbe"/>.</summary>
    IActorRef RouterWithHost(TestProbe hostProbe, FaultInjector? faults = null)
    {
        Sys.ActorOf(Props.Create(() => new Forwarder(hostProbe.Ref)), ExpertHostActor.Name);
        var self = Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString();
        var directory = new ExpertDirectory();
        directory.Replace(Enumerable.Range(0, model.Config.NumExperts).ToImmutableDictionary(e => new ExpertKey(0, e).EntityId, _ => self));
        return Sys.ActorOf(RouterActor.Props(0, model, CreateTestProbe().Ref, directory, Quick, faults));
    }

    sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    [Fact]
    public void A_router_turns_a_host_failure_or_a_malformed_answer_into_a_failure_naming_the_rows_at_once()
    {
        var host = CreateTestProbe();
        var router = RouterWithHost(host);
        const int tokens = 5;

        router.Tell(new FeedForwardStep(1, Rows(tokens, Hidden), Rows(tokens, Hidden)));
        var dispatch = host.ExpectMsg<DispatchTokens>(Quick);
        foreach (var i in dispatch.Items) i.Rows.Take().Dispose();
        host.Reply(new DispatchFailed(dispatch.DispatchId, 0, [0], "expert L0.E? threw"));
        var failed = ExpectMsg<FeedForwardFailed>(Quick);
        Assert.Equal(StepFailureCause.Fault, failed.Failure.Cause);
        Assert.NotEmpty(failed.Failure.Tokens!);
        Assert.All(failed.Failure.Tokens!, t => Assert.InRange(t, 0, tokens - 1));

        router.Tell(new FeedForwardStep(2, Rows(tokens, Hidden), Rows(tokens, Hidden)));
        dispatch = host.ExpectMsg<DispatchTokens>(Quick);
        // An answer with one row too many for its first item.
        var answer = dispatch.Items.Select((item, k) =>
        {
            var rows = item.Rows.Take();
            var shape = k == 0 ? new long[] { rows.shape[0] + 1, Hidden } : rows.shape;
            rows.Dispose();
            return new ExpertInput(item.Expert, TensorPayload.Own(zeros(shape)));
        }).ToList();
        double before = MoeMetrics.RejectedFrames.WithLabels("inconsistent").Value;
        host.Reply(new TokensComputed(dispatch.DispatchId, 0, answer));
        Assert.Contains("malformed batch", ExpectMsg<FeedForwardFailed>(Quick).Failure.Reason);
        Assert.True(MoeMetrics.RejectedFrames.WithLabels("inconsistent").Value > before);
    }

    [Fact]
    public void A_router_that_throws_answers_its_step_at_once_and_routes_the_next_one()
    {
        var faults = new FaultInjector();
        var host = CreateTestProbe();
        var router = RouterWithHost(host, faults);
        faults.Arm(FaultSite.Router);
        router.Tell(new FeedForwardStep(1, Rows(2, Hidden), Rows(2, Hidden)));
        var failed = ExpectMsg<FeedForwardFailed>(Quick);
        Assert.Contains("injected fault", failed.Failure.Reason);
        Assert.Null(failed.Failure.Tokens);
        router.Tell(new FeedForwardStep(2, Rows(2, Hidden), Rows(2, Hidden)));
        var dispatch = host.ExpectMsg<DispatchTokens>(Quick);
        host.Reply(new TokensComputed(dispatch.DispatchId, 0, dispatch.Items.Select(i => new ExpertInput(i.Expert, TensorPayload.Own(i.Rows.Take()))).ToList()));
        var ok = ExpectMsg<FeedForwardComputed>(Quick);
        Assert.Equal(2, ok.StepId);
        ok.Output.Take().Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        model.Dispose();
        try { Directory.Delete(checkpoint, recursive: true); }
        catch (IOException) { /* a leftover temp checkpoint is harmless */ }
    }
}
