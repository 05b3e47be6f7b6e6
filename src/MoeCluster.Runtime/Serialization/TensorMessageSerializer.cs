using Akka.Actor;
using Akka.Serialization;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Serialization;

/// <summary>Binary wire format for messages that carry activations between nodes: fixed fields, then each tensor as
/// dtype (byte), rank, dims, byte length and the raw little-endian bytes. Nothing is JSON or base64, so a decode step of
/// 32 tokens × 2 experts × 512 floats costs its 128 KiB and a few dozen header bytes.</summary>
public sealed class TensorMessageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 7301;
    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        ComputeExpert => "CE",
        ExpertComputed => "EC",
        DispatchTokens => "DT",
        TokensComputed => "TC",
        AttentionStep => "AS",
        AttentionComputed => "AC",
        _ => throw new ArgumentException($"{o.GetType()} is not a tensor message"),
    };

    public override byte[] ToBinary(object obj)
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        switch (obj)
        {
            case ComputeExpert m: w.Write(m.ExpertId); w.Write(m.CorrelationId); Write(w, m.Input); break;
            case ExpertComputed m: w.Write(m.ExpertId); w.Write(m.CorrelationId); Write(w, m.Output); break;
            case DispatchTokens m: w.Write(m.DispatchId); w.Write(m.Layer); Write(w, m.Items); break;
            case TokensComputed m: w.Write(m.DispatchId); w.Write(m.Layer); Write(w, m.Items); w.Write(m.Node); break;
            case AttentionStep m: w.Write(m.EntityId); w.Write(m.StepId); Write(w, m.Layout); Write(w, m.Input); break;
            case AttentionComputed m: w.Write(m.StepId); w.Write(m.Layer); Write(w, m.Residual); Write(w, m.Normed); break;
            default: throw new ArgumentException($"{obj.GetType()} is not a tensor message");
        }
        w.Flush();
        MoeMetrics.BytesBetweenNodes.WithLabels("sent").Inc(stream.Length);
        MoeMetrics.RemoteMessages.WithLabels("sent").Inc();
        return stream.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        MoeMetrics.BytesBetweenNodes.WithLabels("received").Inc(bytes.Length);
        MoeMetrics.RemoteMessages.WithLabels("received").Inc();
        using var r = new BinaryReader(new MemoryStream(bytes));
        return manifest switch
        {
            "CE" => new ComputeExpert(r.ReadString(), r.ReadInt64(), ReadTensor(r)),
            "EC" => new ExpertComputed(r.ReadString(), r.ReadInt64(), ReadTensor(r)),
            "DT" => new DispatchTokens(r.ReadInt64(), r.ReadInt32(), ReadItems(r)),
            "TC" => new TokensComputed(r.ReadInt64(), r.ReadInt32(), ReadItems(r), r.ReadString()),
            "AS" => new AttentionStep(r.ReadString(), r.ReadInt64(), ReadLayout(r), ReadTensor(r)),
            "AC" => new AttentionComputed(r.ReadInt64(), r.ReadInt32(), ReadTensor(r), ReadTensor(r)),
            _ => throw new System.Runtime.Serialization.SerializationException($"unknown tensor message manifest '{manifest}'"),
        };
    }

    static void Write(BinaryWriter w, TensorPayload p)
    {
        var data = p.ToBytesForWire();
        w.Write((byte)p.DType);
        w.Write((byte)p.Shape.Length);
        foreach (var d in p.Shape) w.Write(d);
        w.Write(data.Length);
        w.Write(data);
    }

    static TensorPayload ReadTensor(BinaryReader r)
    {
        var dtype = (ScalarType)r.ReadByte();
        var shape = new long[r.ReadByte()];
        for (int i = 0; i < shape.Length; i++) shape[i] = r.ReadInt64();
        var data = r.ReadBytes(r.ReadInt32());
        return new TensorPayload(dtype, shape, data);
    }

    static void Write(BinaryWriter w, IReadOnlyList<ExpertInput> items)
    {
        w.Write(items.Count);
        foreach (var i in items) { w.Write(i.Expert); w.Write(i.Replica); Write(w, i.Rows); }
    }

    static IReadOnlyList<ExpertInput> ReadItems(BinaryReader r)
    {
        var items = new ExpertInput[r.ReadInt32()];
        for (int i = 0; i < items.Length; i++)
        {
            int expert = r.ReadInt32();
            bool replica = r.ReadBoolean();
            items[i] = new ExpertInput(expert, ReadTensor(r), replica);
        }
        return items;
    }

    static void Write(BinaryWriter w, StepLayout layout)
    {
        w.Write(layout.Segments.Count);
        foreach (var s in layout.Segments) { w.Write(s.Slot); w.Write(s.Start); w.Write(s.Length); }
    }

    static StepLayout ReadLayout(BinaryReader r)
    {
        var segments = new SequenceSegment[r.ReadInt32()];
        for (int i = 0; i < segments.Length; i++) segments[i] = new SequenceSegment(r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
        return new StepLayout(segments);
    }
}
