using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Attention;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>An attention entity forks a cached prefix into another slot before the step (the decode of the copy equals
/// the decode of the original), and answers CacheMissing for both slots when it does not hold what it is asked to copy.</summary>
public sealed class AttentionPrefixCopySpec : Akka.TestKit.Xunit2.TestKit
{
    static readonly TimeSpan Quick = TimeSpan.FromSeconds(10);
    readonly ModelSource model;

    public AttentionPrefixCopySpec(ITestOutputHelper output) : base(ProbeRegions.ClusterConfig, output: output)
    {
        string checkpoint;
        using (var m = TinyModels.Random(Architecture.Mixtral)) checkpoint = TinyCheckpoint.Write(m);
        model = new ModelSource(checkpoint, ModuleOptions.Cpu32);
    }

    [Fact]
    public void A_copied_prefix_decodes_as_the_original_and_a_copy_of_positions_not_held_is_answered_cache_missing()
    {
        int hidden = model.Config.HiddenSize;
        var attention = Sys.ActorOf(AttentionActor.Props(AttentionEntity.Id("gw", 0), model));
        attention.Tell(new StartAttention("gw@L0", 3, 16));
        ExpectMsg<AttentionStarted>(Quick);
        manual_seed(5);
        var prompt = randn([6, hidden]);
        var next = randn([1, hidden]);
        attention.Tell(new AttentionStep("gw@L0", 1, StepLayout.Single(0, 0, 6), TensorPayload.Own(prompt.clone())));
        Release(ExpectMsg<AttentionComputed>(Quick));

        attention.Tell(new AttentionStep("gw@L0", 2, StepLayout.Single(0, 6, 1), TensorPayload.Own(next.clone())));
        using var original = Residual(ExpectMsg<AttentionComputed>(Quick));
        attention.Tell(new AttentionStep("gw@L0", 3, StepLayout.Single(1, 6, 1), TensorPayload.Own(next.clone())) { Copies = [new KvCopy(0, 1, 6)] });
        using var forked = Residual(ExpectMsg<AttentionComputed>(Quick));
        Assert.True(allclose(original, forked, rtol: 0, atol: 1e-6), "the fork attends over the same keys and values");

        // Slot 2 holds nothing: copying 6 of its positions cannot be done, and neither slot can be trusted.
        attention.Tell(new AttentionStep("gw@L0", 4, StepLayout.Single(1, 6, 1), TensorPayload.Own(next.clone())) { Copies = [new KvCopy(2, 1, 6)] });
        Assert.Equal([1, 2], ExpectMsg<AttentionCacheMissing>(Quick).Slots.Order());
        attention.Tell(new AttentionStep("gw@L0", 5, StepLayout.Single(1, 0, 1), TensorPayload.Own(next.clone())) { Copies = [new KvCopy(0, 7, 6)] });
        Assert.Contains("outside the cache", ExpectMsg<AttentionFailed>(Quick).Reason);
    }

    static void Release(AttentionComputed m) { m.Residual.Take().Dispose(); m.Normed.Take().Dispose(); }

    static Tensor Residual(AttentionComputed m)
    {
        m.Normed.Take().Dispose();
        return m.Residual.Take();
    }
}
