using System.Buffers.Binary;
using Akka.Actor;
using Akka.Configuration;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>Frames from peers are never trusted: truncated, oversized and inconsistent frames are refused with a
/// <see cref="RejectedFrameException"/> naming the reason, counted, and never allocate beyond their own bytes.</summary>
public sealed class FrameValidationSpec : IDisposable
{
    const int MaxFrame = 64_000;
    readonly ActorSystem system = ActorSystem.Create("frames", ConfigurationFactory.ParseString(
        $"akka.remote.dot-netty.tcp.maximum-frame-size = {MaxFrame}b"));
    readonly TensorMessageSerializer serializer;

    public FrameValidationSpec() => serializer = new TensorMessageSerializer((ExtendedActorSystem)system);

    public void Dispose() => system.Terminate().Wait();

    static TensorPayload Rows(int n, int d) => TensorPayload.Own(arange(n * d, ScalarType.Float32).reshape(n, d));

    /// <summary>One valid frame of every kind.</summary>
    (string manifest, byte[] bytes)[] ValidFrames()
    {
        object[] messages =
        [
            new ComputeExpert("L0.E1", 7, Rows(3, 4)),
            new ExpertComputed("L0.E1", 7, Rows(3, 4)),
            new DispatchTokens(9, 1, Rows(3, 4), [new ExpertRows(2, [0, 2]), new ExpertRows(5, [1], Replica: true)]),
            new TokensComputed(9, 1, [new ExpertInput(2, Rows(2, 4))]),
            new DispatchTokens(10, 1, Rows(2, 4), [new ExpertRows(2, [0, 1], [0.5f, 0.25f]), new ExpertRows(5, [1], [0.75f])], Combine: true),
            new TokensComputed(10, 1, [], Rows(2, 4)),
            new AttentionStep("gw@L0", 3, new StepLayout([new SequenceSegment(0, 0, 2), new SequenceSegment(1, 5, 1)]), Rows(3, 4)),
            new AttentionStep("gw@L0", 4, StepLayout.Single(2, 16, 1), Rows(1, 4)) { Copies = [new Model.Generation.KvCopy(0, 2, 16)] },
            new AttentionComputed(3, 0, Rows(3, 4), Rows(3, 4)),
        ];
        return messages.Select(m => (serializer.Manifest(m), serializer.ToBinary(m))).ToArray();
    }

    RejectedFrameException Refused(byte[] bytes, string manifest) =>
        Assert.Throws<RejectedFrameException>(() => serializer.FromBinary(bytes, manifest));

    [Fact]
    public void Every_message_kind_round_trips()
    {
        foreach (var (manifest, bytes) in ValidFrames())
        {
            var back = serializer.FromBinary(bytes, manifest);
            Assert.Equal(bytes, serializer.ToBinary(back));   // decoding and encoding again gives the same bytes
        }
    }

    [Fact]
    public void Every_truncation_of_every_frame_is_refused_and_nothing_else_is_thrown()
    {
        double before = MoeMetrics.RejectedFrames.WithLabels("truncated").Value;
        int cases = 0;
        foreach (var (manifest, bytes) in ValidFrames())
            for (int length = 0; length < bytes.Length; length++, cases++)
            {
                var e = Refused(bytes[..length], manifest);
                Assert.True(e.Reason is FrameRejection.Truncated or FrameRejection.Count or FrameRejection.Shape or FrameRejection.Inconsistent,
                    $"{manifest} cut at {length}: {e.Reason}");
            }
        Assert.True(MoeMetrics.RejectedFrames.WithLabels("truncated").Value > before);
        Assert.True(cases > 500);
    }

    [Fact]
    public void A_tiny_frame_asking_for_a_huge_tensor_is_refused_without_allocating_it()
    {
        foreach (long[] shape in new[] { new long[] { 65536, 65536 }, [1L << 27, 3], [int.MaxValue, int.MaxValue, int.MaxValue] })
        {
            using var stream = new MemoryStream();
            using (var w = new BinaryWriter(stream))
            {
                w.Write("L0.E1"); w.Write(1L);
                w.Write((byte)ScalarType.Float32); w.Write((byte)shape.Length);
                foreach (var d in shape) w.Write(d);
                long bytes = shape.Aggregate(4L, (a, d) => a * d);
                w.Write(bytes <= int.MaxValue ? (int)bytes : int.MaxValue);
                w.Write(new byte[16]);
            }
            var frame = stream.ToArray();
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var e = Refused(frame, "CE");
            allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            Assert.True(e.Reason is FrameRejection.Shape or FrameRejection.Truncated, e.Message);
            Assert.True(allocated < 64 * 1024, $"a {frame.Length}-byte frame allocated {allocated} bytes");
        }
    }

    /// <summary>A ComputeExpert frame with its tensor header patched: dtype at offset 14, rank 15, dims from 16.</summary>
    static byte[] Patch(byte[] frame, int offset, params byte[] value)
    {
        var copy = (byte[])frame.Clone();
        value.CopyTo(copy, offset);
        return copy;
    }

    [Fact]
    public void Wrong_dtypes_shapes_counts_trailing_bytes_sizes_and_kinds_are_each_refused_with_their_reason()
    {
        var frames = ValidFrames().GroupBy(f => f.manifest).ToDictionary(g => g.Key, g => g.First().bytes);
        var ce = frames["CE"];   // "L0.E1" (6) + correlation (8) | dtype | rank | 2 × dim (16) | length (4) | payload
        Assert.Equal(FrameRejection.Dtype, Refused(Patch(ce, 14, (byte)ScalarType.Int64), "CE").Reason);
        Assert.Equal(FrameRejection.Shape, Refused(Patch(ce, 15, 9), "CE").Reason);                  // rank 9
        Assert.Equal(FrameRejection.Shape, Refused(Patch(ce, 16, 4), "CE").Reason);                  // [4, 4] but 48 bytes
        Assert.Equal(FrameRejection.Shape, Refused(Patch(ce, 15, 1), "CE").Reason);                  // rank 1: shifts every field
        Assert.Equal(FrameRejection.Trailing, Refused([.. ce, 0], "CE").Reason);
        Assert.Equal(FrameRejection.Manifest, Refused(ce, "XX").Reason);
        Assert.Equal(FrameRejection.Oversized, Refused(new byte[MaxFrame + 1], "CE").Reason);

        // dispatch id (8) | layer (4) | combine (1) | rows [3, 4] (dtype, rank, 2 dims, length, 48 bytes: 70) |
        // item count (4) at 83 | expert (4) | replica (1) at 91 | row count (4) | row indices at 96 …
        var dt = frames["DT"];
        var many = (byte[])dt.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(many.AsSpan(83), int.MaxValue);
        Assert.Equal(FrameRejection.Count, Refused(many, "DT").Reason);
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(dt, 91, 2), "DT").Reason);            // replica flag 2
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(dt, 12, 2), "DT").Reason);            // combine flag 2
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(dt, 96, 3), "DT").Reason);            // row 3 of a 3-row batch
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(dt, 100, 0), "DT").Reason);           // rows 0, 0: not ascending

        var step = frames["AS"];  // "gw@L0" (6) | step (8) | segment count (4) | (slot, start, length) × 2 | tensor
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(step, 26, 5), "AS").Reason);          // length 5: covers 6 rows, not 3
        Assert.Equal(FrameRejection.Inconsistent, Refused(Patch(step, 18, 0xFF, 0xFF, 0xFF, 0xFF), "AS").Reason);   // slot -1

        var before = MoeMetrics.RejectedFrames.WithLabels("dtype").Value;
        Refused(Patch(ce, 14, (byte)ScalarType.Int8), "CE");
        Assert.Equal(before + 1, MoeMetrics.RejectedFrames.WithLabels("dtype").Value);
    }
}
