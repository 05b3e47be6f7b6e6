using MoeCluster.Model.Generation;
using Akka.Actor;
using Akka.Serialization;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Serialization;

/// <summary>Binary wire format for messages that carry activations between nodes: fixed fields, then each tensor as
/// dtype (byte), rank, dims, byte length and the raw little-endian bytes; row indices and gate weights of a per-node
/// batch as plain int32/float32 arrays. Nothing is JSON or base64, so a decode step of 32 tokens × 2 experts × 512
/// floats costs at most its 128 KiB (less when a token's experts share a node) and a few bytes per row.</summary>
public sealed class TensorMessageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 7301;
    public override int Identifier => Id;

    /// <summary>HOCON key of the dtype float32 activations travel in between nodes ("bfloat16" halves the bytes per
    /// token; anything else sends them as computed). Set by <c>--wire-dtype</c>.</summary>
    public const string WireDTypeKey = "moecluster.wire-dtype";

    readonly ScalarType? wire = system.Settings.Config.GetString(WireDTypeKey, "") switch
    {
        "bfloat16" => ScalarType.BFloat16,
        _ => null,
    };

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
            case DispatchTokens m: w.Write(m.DispatchId); w.Write(m.Layer); w.Write(m.Combine); Write(w, m.Rows); Write(w, m.Items, m.Combine); break;
            case TokensComputed m:
                w.Write(m.DispatchId); w.Write(m.Layer); Write(w, m.Items);
                w.Write(m.Combined is not null);
                if (m.Combined is not null) Write(w, m.Combined);
                break;
            case AttentionStep m: w.Write(m.EntityId); w.Write(m.StepId); Write(w, m.Layout); Write(w, m.Copies); Write(w, m.Input); break;
            case AttentionComputed m: w.Write(m.StepId); w.Write(m.Layer); Write(w, m.Residual); Write(w, m.Normed); break;
            default: throw new ArgumentException($"{obj.GetType()} is not a tensor message");
        }
        w.Flush();
        MoeMetrics.BytesBetweenNodes.WithLabels("sent").Inc(stream.Length);
        MoeMetrics.RemoteMessages.WithLabels("sent").Inc();
        return stream.ToArray();
    }

    /// <summary>Decodes a frame from a peer, trusting nothing in it (<see cref="FrameReader"/>): a frame that is
    /// truncated, larger than <see cref="MaxFrameBytes"/>, has a dtype outside the activation allow-list, a shape that
    /// does not match its payload, counts its bytes cannot hold, trailing bytes, or fields that contradict each other is
    /// counted in <c>moecluster_rejected_frames_total{reason}</c> and refused with a <see cref="RejectedFrameException"/>:
    /// Akka's endpoint reader then drops that one message and keeps the connection. Nothing is allocated beyond
    /// the frame's own bytes.</summary>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        MoeMetrics.BytesBetweenNodes.WithLabels("received").Inc(bytes.Length);
        MoeMetrics.RemoteMessages.WithLabels("received").Inc();
        try
        {
            if (bytes.Length > MaxFrameBytes)
                throw FrameReader.Reject(FrameRejection.Oversized, $"{bytes.Length} bytes, more than the {MaxFrameBytes} allowed");
            var r = new FrameReader(bytes);
            object message = manifest switch
            {
                "CE" => new ComputeExpert(r.Text("expert id", MaxIdBytes), r.Int64("correlation id"), Rows(ReadTensor(ref r), "input")),
                "EC" => new ExpertComputed(r.Text("expert id", MaxIdBytes), r.Int64("correlation id"), Rows(ReadTensor(ref r), "output")),
                "DT" => ReadDispatch(ref r),
                "TC" => new TokensComputed(r.Int64("dispatch id"), r.Int32("layer"), ReadItems(ref r), r.Bool("combined flag") ? Rows(ReadTensor(ref r), "combined") : null),
                "AS" => ReadAttentionStep(ref r),
                "AC" => ReadAttentionComputed(ref r),
                _ => throw FrameReader.Reject(FrameRejection.Manifest, $"unknown tensor message kind '{manifest}'"),
            };
            r.End();
            return message;
        }
        catch (RejectedFrameException e)
        {
            MoeMetrics.FrameRejected(e.Reason);
            throw;
        }
    }

    /// <summary>Largest frame accepted: the remoting transport's maximum frame size.</summary>
    long MaxFrameBytes { get; } = system.Settings.Config.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size", null) ?? 128_000;

    /// <summary>Entity ids and node addresses are short; a peer cannot make us decode a long string.</summary>
    const int MaxIdBytes = 512;
    const int MaxRank = 4;

    /// <summary>Activations travel as floating point only.</summary>
    static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => throw FrameReader.Reject(FrameRejection.Dtype, $"dtype {(int)dtype} is not an activation dtype (float32, bfloat16, float16)"),
    };

    static TensorPayload ReadTensor(ref FrameReader r)
    {
        var dtype = (ScalarType)r.Byte("dtype");
        int size = ElementSize(dtype);
        int rank = r.Byte("rank");
        if (rank is < 1 or > MaxRank) throw FrameReader.Reject(FrameRejection.Shape, $"rank {rank} (1 to {MaxRank} allowed)");
        var shape = new long[rank];
        long elements = 1;
        for (int i = 0; i < rank; i++)
        {
            shape[i] = r.Int64("dimension");
            if (shape[i] is < 0 or > int.MaxValue) throw FrameReader.Reject(FrameRejection.Shape, $"dimension {shape[i]}");
            elements = shape[i] == 0 || elements <= int.MaxValue / shape[i] ? elements * shape[i] : long.MaxValue;
        }
        int length = r.Int32("payload length");
        if (elements == long.MaxValue || elements * size != length)
            throw FrameReader.Reject(FrameRejection.Shape, $"shape [{string.Join(", ", shape)}] of {dtype} needs {(elements == long.MaxValue ? "more than 2 GiB" : $"{elements * size} bytes")}, the payload says {length}");
        return new TensorPayload(dtype, shape, r.Bytes(length, "payload").ToArray());
    }

    /// <summary>Token rows [n, D]: what experts and routers exchange.</summary>
    static TensorPayload Rows(TensorPayload p, string what) => p.Shape.Length == 2 ? p
        : throw FrameReader.Reject(FrameRejection.Shape, $"{what} must be [rows, hidden], got [{string.Join(", ", p.Shape)}]");

    static IReadOnlyList<ExpertInput> ReadItems(ref FrameReader r)
    {
        // expert (4) + replica flag (1) + the smallest tensor header (dtype, rank, one dimension, length: 14)
        var items = new ExpertInput[r.Count("items", minEntryBytes: 19)];
        for (int i = 0; i < items.Length; i++)
        {
            int expert = r.Int32("expert");
            if (expert < 0) throw FrameReader.Reject(FrameRejection.Inconsistent, $"expert {expert}");
            bool replica = r.Bool("replica flag");
            items[i] = new ExpertInput(expert, Rows(ReadTensor(ref r), "rows"), replica);
            if (items[i].Rows.Shape[1] != items[0].Rows.Shape[1] || items[i].Rows.DType != items[0].Rows.DType)
                throw FrameReader.Reject(FrameRejection.Inconsistent, "items of one batch differ in hidden size or dtype");
        }
        return items;
    }

    static DispatchTokens ReadDispatch(ref FrameReader r)
    {
        long id = r.Int64("dispatch id");
        int layer = r.Int32("layer");
        bool combine = r.Bool("combine flag");
        var rows = Rows(ReadTensor(ref r), "rows");
        // expert (4) + replica flag (1) + row count (4), then 4 bytes per row (and 4 per gate when combining)
        var items = new ExpertRows[r.Count("items", minEntryBytes: 9)];
        for (int i = 0; i < items.Length; i++)
        {
            int expert = r.Int32("expert");
            if (expert < 0) throw FrameReader.Reject(FrameRejection.Inconsistent, $"expert {expert}");
            bool replica = r.Bool("replica flag");
            var indices = new int[r.Count("row indices", minEntryBytes: combine ? 8 : 4)];
            for (int j = 0; j < indices.Length; j++)
            {
                indices[j] = r.Int32("row index");
                if (indices[j] < 0 || indices[j] >= rows.Shape[0] || j > 0 && indices[j] <= indices[j - 1])
                    throw FrameReader.Reject(FrameRejection.Inconsistent, $"item {i}: row index {indices[j]} is not ascending within [0, {rows.Shape[0]})");
            }
            float[]? gates = null;
            if (combine)
            {
                gates = new float[indices.Length];
                for (int j = 0; j < gates.Length; j++)
                {
                    gates[j] = BitConverter.Int32BitsToSingle(r.Int32("gate weight"));
                    if (!float.IsFinite(gates[j])) throw FrameReader.Reject(FrameRejection.Inconsistent, $"item {i}: gate weight {gates[j]}");
                }
            }
            items[i] = new ExpertRows(expert, indices, gates, replica);
        }
        return new DispatchTokens(id, layer, rows, items, combine);
    }

    static void Write(BinaryWriter w, IReadOnlyList<ExpertRows> items, bool combine)
    {
        w.Write(items.Count);
        foreach (var i in items)
        {
            w.Write(i.Expert); w.Write(i.Replica);
            w.Write(i.Rows.Length);
            foreach (var row in i.Rows) w.Write(row);
            if (!combine) continue;
            if (i.Gates is null || i.Gates.Length != i.Rows.Length) throw new ArgumentException($"a combining dispatch needs a gate weight for each row of expert {i.Expert}");
            foreach (var g in i.Gates) w.Write(g);
        }
    }

    static AttentionStep ReadAttentionStep(ref FrameReader r)
    {
        var entity = r.Text("entity id", MaxIdBytes);
        long step = r.Int64("step id");
        var layout = ReadLayout(ref r);
        var copies = ReadCopies(ref r);
        var input = Rows(ReadTensor(ref r), "input");
        if (input.Shape[0] != layout.TokenCount)
            throw FrameReader.Reject(FrameRejection.Inconsistent, $"the layout covers {layout.TokenCount} tokens, the input has {input.Shape[0]} rows");
        return new AttentionStep(entity, step, layout, input) { Copies = copies };
    }

    static AttentionComputed ReadAttentionComputed(ref FrameReader r)
    {
        long step = r.Int64("step id");
        int layer = r.Int32("layer");
        var residual = Rows(ReadTensor(ref r), "residual");
        var normed = Rows(ReadTensor(ref r), "normed");
        if (!residual.Shape.SequenceEqual(normed.Shape))
            throw FrameReader.Reject(FrameRejection.Inconsistent, "residual and normed rows differ in shape");
        return new AttentionComputed(step, layer, residual, normed);
    }

    void Write(BinaryWriter w, TensorPayload p)
    {
        var (data, dtype) = p.ToBytesForWire(wire);
        w.Write((byte)dtype);
        w.Write((byte)p.Shape.Length);
        foreach (var d in p.Shape) w.Write(d);
        w.Write(data.Length);
        w.Write(data);
    }

    void Write(BinaryWriter w, IReadOnlyList<ExpertInput> items)
    {
        w.Write(items.Count);
        foreach (var i in items) { w.Write(i.Expert); w.Write(i.Replica); Write(w, i.Rows); }
    }

    static void Write(BinaryWriter w, StepLayout layout)
    {
        w.Write(layout.Segments.Count);
        foreach (var s in layout.Segments) { w.Write(s.Slot); w.Write(s.Start); w.Write(s.Length); }
    }

    static void Write(BinaryWriter w, IReadOnlyList<KvCopy> copies)
    {
        w.Write(copies.Count);
        foreach (var c in copies) { w.Write(c.FromSlot); w.Write(c.ToSlot); w.Write(c.Tokens); }
    }

    static KvCopy[] ReadCopies(ref FrameReader r)
    {
        var copies = new KvCopy[r.Count("KV-cache copies", minEntryBytes: 12)];
        for (int i = 0; i < copies.Length; i++)
        {
            copies[i] = new KvCopy(r.Int32("copy source slot"), r.Int32("copy target slot"), r.Int32("copied positions"));
            if (copies[i] is { FromSlot: < 0 } or { ToSlot: < 0 } or { Tokens: < 0 })
                throw FrameReader.Reject(FrameRejection.Inconsistent, $"KV-cache copy {copies[i]}");
        }
        return copies;
    }

    static StepLayout ReadLayout(ref FrameReader r)
    {
        var segments = new SequenceSegment[r.Count("segments", minEntryBytes: 12)];
        long tokens = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            segments[i] = new SequenceSegment(r.Int32("slot"), r.Int32("start"), r.Int32("length"));
            var s = segments[i];
            if (s.Slot < 0 || s.Start < 0 || s.Length < 1 || (long)s.Start + s.Length > int.MaxValue)
                throw FrameReader.Reject(FrameRejection.Inconsistent, $"segment (slot {s.Slot}, start {s.Start}, length {s.Length})");
            tokens += s.Length;
        }
        if (tokens > int.MaxValue) throw FrameReader.Reject(FrameRejection.Inconsistent, "the layout covers more than 2^31 tokens");
        return new StepLayout(segments);
    }
}
