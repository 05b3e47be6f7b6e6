using System.Collections.Immutable;
using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Routing;
using MoeCluster.Runtime.Tests.Support;
using MoeCluster.TestSupport;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>A router sends a node each of its tokens once, whatever number of the node's experts the token chose, and
/// with top-2 takes one combined row per token back.</summary>
public sealed class NodeDispatchSpec : Akka.TestKit.Xunit2.TestKit
{
    static readonly TimeSpan Quick = TimeSpan.FromSeconds(10);
    readonly string checkpoint;
    readonly ModelSource model;

    public NodeDispatchSpec(ITestOutputHelper output) : base(ProbeRegions.ClusterConfig, output: output)
    {
        using (var m = TinyModels.Random(Architecture.Mixtral)) checkpoint = TinyCheckpoint.Write(m);
        model = new ModelSource(checkpoint, ModuleOptions.Cpu32);
    }

    sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    [Fact]
    public void A_token_whose_experts_share_a_node_is_sent_there_once_and_comes_back_as_one_combined_row()
    {
        var host = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new Forwarder(host.Ref)), ExpertHostActor.Name);
        var self = Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString();
        var directory = new ExpertDirectory();
        directory.Replace(Enumerable.Range(0, model.Config.NumExperts).ToImmutableDictionary(e => new ExpertKey(0, e).EntityId, _ => self));
        var router = Sys.ActorOf(RouterActor.Props(0, model, CreateTestProbe().Ref, directory, Quick));
        const int tokens = 7;
        var residual = randn([tokens, model.Config.HiddenSize]);

        router.Tell(new FeedForwardStep(1, TensorPayload.Own(residual.clone()), TensorPayload.Own(randn([tokens, model.Config.HiddenSize]))));
        var dispatch = host.ExpectMsg<DispatchTokens>(Quick);

        Assert.True(dispatch.Combine);
        Assert.Equal(tokens, dispatch.Rows.Shape[0]);                                   // each token once …
        Assert.Equal(tokens * model.Config.TopK, dispatch.Items.Sum(i => i.Rows.Length));   // … for its k experts
        Assert.Equal(dispatch.Items.Select(i => i.Expert).Order(), dispatch.Items.Select(i => i.Expert));
        foreach (var item in dispatch.Items)
        {
            Assert.Equal(item.Rows.Order().Distinct(), item.Rows);
            Assert.Equal(item.Rows.Length, item.Gates!.Length);
        }
        // Per token, its gate weights over the node's experts sum to 1 (Mixtral renormalises the top-k).
        var perToken = new double[tokens];
        foreach (var item in dispatch.Items)
            for (int j = 0; j < item.Rows.Length; j++) perToken[item.Rows[j]] += item.Gates![j];
        Assert.All(perToken, w => Assert.Equal(1.0, w, 5));

        dispatch.Rows.Take().Dispose();
        host.Reply(new TokensComputed(dispatch.DispatchId, 0, [], TensorPayload.Own(ones([tokens, model.Config.HiddenSize]))));
        var done = ExpectMsg<FeedForwardComputed>(Quick);
        using var output = done.Output.Take();
        Assert.True(output.allclose(residual + 1));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        model.Dispose();
        try { Directory.Delete(checkpoint, recursive: true); }
        catch (IOException) { /* a leftover temp checkpoint is harmless */ }
    }
}
