using System.Buffers.Binary;
using System.Runtime.Serialization;
using System.Text;

namespace MoeCluster.Runtime.Serialization;

/// <summary>Why a frame from a peer was refused; the value of <c>moecluster_rejected_frames_total{reason}</c>.
/// A closed set, so the series count stays bounded whatever a peer sends.</summary>
public enum FrameRejection
{
    /// <summary>The frame ends before a field it announces.</summary>
    Truncated,
    /// <summary>Larger than the configured maximum frame size.</summary>
    Oversized,
    /// <summary>A tensor dtype outside the activation allow-list.</summary>
    Dtype,
    /// <summary>A tensor's rank, dimensions or byte length disagree (shape × element size ≠ payload length).</summary>
    Shape,
    /// <summary>A count (items, segments, text length) that the remaining bytes cannot hold, or out of range.</summary>
    Count,
    /// <summary>Bytes left over after the last field.</summary>
    Trailing,
    /// <summary>An unknown message kind.</summary>
    Manifest,
    /// <summary>Fields that are well formed but contradict each other or the model (a layout that does not cover the
    /// tensor's rows, a slot, layer or expert out of range, a hidden size the model does not have).</summary>
    Inconsistent,
}

/// <summary>A frame refused by <see cref="FrameReader"/> or by the actor it was addressed to. A
/// <see cref="SerializationException"/>, so Akka's endpoint reader drops the message and keeps the association.</summary>
public sealed class RejectedFrameException(FrameRejection reason, string message) : SerializationException(message)
{
    public FrameRejection Reason { get; } = reason;
}

/// <summary>Reads a frame from a peer without trusting it: every length and count is checked against the bytes that
/// remain before anything is allocated, so a tiny frame can never ask for a large allocation. Integers are
/// little-endian as <see cref="BinaryWriter"/> writes them; text is its 7-bit length prefix and UTF-8.</summary>
public ref struct FrameReader(ReadOnlySpan<byte> frame)
{
    ReadOnlySpan<byte> rest = frame;

    public readonly int Remaining => rest.Length;

    ReadOnlySpan<byte> Take(int n, string what)
    {
        if (n < 0) throw Reject(FrameRejection.Count, $"{what}: negative length {n}");
        if (n > rest.Length) throw Reject(FrameRejection.Truncated, $"{what}: needs {n} bytes, {rest.Length} left");
        var taken = rest[..n];
        rest = rest[n..];
        return taken;
    }

    public byte Byte(string what) => Take(1, what)[0];
    public bool Bool(string what) => Byte(what) switch
    {
        0 => false,
        1 => true,
        var b => throw Reject(FrameRejection.Inconsistent, $"{what}: {b} is not a boolean"),
    };
    public int Int32(string what) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, what));
    public long Int64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));

    /// <summary>A count of entries that each take at least <paramref name="minEntryBytes"/>: refused before anything
    /// is allocated for them when the rest of the frame could not hold that many.</summary>
    public int Count(string what, int minEntryBytes)
    {
        int n = Int32(what);
        if (n < 0 || (long)n * minEntryBytes > rest.Length)
            throw Reject(FrameRejection.Count, $"{what}: {n} entries cannot fit in the {rest.Length} bytes left");
        return n;
    }

    public ReadOnlySpan<byte> Bytes(int n, string what) => Take(n, what);

    /// <summary>A string as <see cref="BinaryWriter.Write(string)"/> writes it, at most <paramref name="maxBytes"/> long.</summary>
    public string Text(string what, int maxBytes = 1024)
    {
        int length = 0, shift = 0;
        byte b;
        do
        {
            if (shift > 28) throw Reject(FrameRejection.Count, $"{what}: malformed length prefix");
            b = Byte(what);
            length |= (b & 0x7F) << shift;
            shift += 7;
        } while ((b & 0x80) != 0);
        if (length > maxBytes) throw Reject(FrameRejection.Count, $"{what}: {length} bytes, more than {maxBytes}");
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(length, what)); }
        catch (DecoderFallbackException) { throw Reject(FrameRejection.Inconsistent, $"{what}: not UTF-8"); }
    }

    /// <summary>The frame must end here.</summary>
    public readonly void End()
    {
        if (rest.Length != 0) throw Reject(FrameRejection.Trailing, $"{rest.Length} bytes after the last field");
    }

    public static RejectedFrameException Reject(FrameRejection reason, string message) => new(reason, $"frame refused ({reason.ToString().ToLowerInvariant()}): {message}");
}
