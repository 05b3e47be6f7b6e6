using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>A peer that speaks our wire format badly, over real remoting: its truncated, oversized and inconsistent
/// frames to a live node's expert host and attention entity are dropped and counted, well-formed but impossible
/// requests are answered with a failure, and the node keeps its association, its KV caches and its tokens.</summary>
public sealed class HostilePeerSpec
{
    /// <summary>Bytes sent as if they were one of our tensor messages (same serializer id, any manifest).</summary>
    public sealed record HostileFrame(string Manifest, byte[] Bytes);

    public sealed class HostileFrameSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        public override int Identifier => TensorMessageSerializer.Id;
        public override string Manifest(object o) => ((HostileFrame)o).Manifest;
        public override byte[] ToBinary(object obj) => ((HostileFrame)obj).Bytes;
        public override object FromBinary(byte[] bytes, string manifest) => throw new NotSupportedException();
    }

    sealed class Collector : ReceiveActor
    {
        public Collector(ConcurrentQueue<object> into) => ReceiveAny(into.Enqueue);
    }

    [Fact]
    public async Task Malformed_frames_from_a_peer_are_dropped_and_counted_and_the_node_keeps_serving_the_same_tokens()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var batching = new BatchingOptions { MaxBatchSize = 2, ContextLength = 200 };
        var long_ = new GenerationRequest("long", [3, 1, 4, 1, 5], 150);
        IReadOnlyList<int> expected;
        using (var single = MoeTransformer.Load(checkpoint, ModuleOptions.Cpu32))
        using (var engine = new LocalEngine(single, batching))
            expected = engine.Run([long_])[long_.Id].Generated;

        await using var node = (await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = batching }, 1))[0];
        var service = await node.WaitUntilReadyAsync();
        var hostile = ActorSystem.Create("hostile", ConfigurationFactory.ParseString($$"""
            akka.loglevel = ERROR
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = {{FreePorts.Next()}} }
            akka.actor.serializers.hostile = "{{typeof(HostileFrameSerializer).AssemblyQualifiedName}}"
            akka.actor.serialization-bindings { "{{typeof(HostileFrame).AssemblyQualifiedName}}" = hostile }
            """));
        try
        {
            var replies = new ConcurrentQueue<object>();
            var inbox = hostile.ActorOf(Props.Create(() => new Collector(replies)));
            var victim = node.Options.SelfAddress;
            var host = hostile.ActorSelection($"{victim}/user/{ExpertHostActor.Name}");
            var attention = hostile.ActorSelection($"{victim}/system/sharding/{Hosting.MoeClusterHosting.AttentionTypeName}");
            var frames = new TensorMessageSerializer((ExtendedActorSystem)hostile);
            HostileFrame Frame(object message) => new(frames.Manifest(message), frames.ToBinary(message));
            int hidden = model.Config.HiddenSize;
            var gatewayLayer0 = AttentionEntity.Id($"gw-127.0.0.1-{node.Options.Port}", 0);

            // A long generation runs through the attack: its KV cache must survive it.
            var running = service.GenerateAsync(long_).GetAsyncEnumerator();
            Assert.True(await running.MoveNextAsync());
            var rejected = Enum.GetValues<FrameRejection>().ToDictionary(r => r, r => MoeMetrics.RejectedFrames.WithLabels(r.ToString().ToLowerInvariant()).Value);

            var valid = Frame(new DispatchTokens(1, 0, [new ExpertInput(0, TensorPayload.Own(zeros(2, hidden)))]));
            host.Tell(valid with { Bytes = valid.Bytes[..^5] }, inbox);                                  // truncated
            var huge = (byte[])valid.Bytes.Clone();
            BitConverter.GetBytes(1L << 33).CopyTo(huge, 8 + 4 + 4 + 4 + 1 + 1 + 1);                  // rows = 2^33: a 32 TiB claim
            host.Tell(valid with { Bytes = huge }, inbox);
            host.Tell(valid with { Bytes = [.. valid.Bytes, 1, 2, 3] }, inbox);                          // trailing bytes
            host.Tell(new HostileFrame("ZZ", valid.Bytes), inbox);                                      // unknown kind
            attention.Tell(Frame(new AttentionStep(gatewayLayer0, 9, StepLayout.Single(0, 0, 3), TensorPayload.Own(zeros(2, hidden)))), inbox);   // rows ≠ layout

            // Well formed but impossible: answered with a failure, over the same association.
            host.Tell(Frame(new DispatchTokens(2, 99, [new ExpertInput(0, TensorPayload.Own(zeros(1, hidden)))])), inbox);
            attention.Tell(Frame(new AttentionStep(gatewayLayer0, 10, StepLayout.Single(57, 0, 1), TensorPayload.Own(zeros(1, hidden)))), inbox);
            attention.Tell(Frame(new AttentionStep(gatewayLayer0, 11, StepLayout.Single(0, 0, 1), TensorPayload.Own(zeros(1, hidden + 3)))), inbox);
            await Poll.UntilAsync(() => replies.Count >= 3, TimeSpan.FromSeconds(20), "failure replies to the well-formed impossible frames");
            Assert.Contains(replies, r => r is DispatchFailed { DispatchId: 2 } f && f.Reason.Contains("layer 99"));
            Assert.Contains(replies, r => r is AttentionFailed { StepId: 10 } f && f.Reason.Contains("slot 57"));
            Assert.Contains(replies, r => r is AttentionFailed { StepId: 11 });
            Assert.Equal(3, replies.Count);                                                             // the malformed ones got nothing

            double Delta(FrameRejection r) => MoeMetrics.RejectedFrames.WithLabels(r.ToString().ToLowerInvariant()).Value - rejected[r];
            Assert.True(Delta(FrameRejection.Truncated) >= 1);
            Assert.True(Delta(FrameRejection.Shape) >= 1);
            Assert.True(Delta(FrameRejection.Trailing) >= 1);
            Assert.True(Delta(FrameRejection.Manifest) >= 1);
            Assert.True(Delta(FrameRejection.Inconsistent) >= 4);

            // The running sequence finishes with the single-process tokens.
            var tokens = new List<int> { ((TokenGenerated)running.Current).Token };
            SequenceFinished? finished = null;
            while (await running.MoveNextAsync())
                if (running.Current is TokenGenerated t) tokens.Add(t.Token);
                else if (running.Current is SequenceFinished f) finished = f;
            Assert.Equal(FinishReason.Length, finished!.Reason);
            Assert.Equal(expected, tokens);
            Assert.Equal(expected, (await service.GenerateToEndAsync(long_ with { Id = "after" })).Generated);
        }
        finally { await hostile.Terminate(); }
    }
}
