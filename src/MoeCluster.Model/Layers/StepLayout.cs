using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Tokens of one sequence in one step: they occupy positions [Start, Start+Length) of KV-cache slot <c>Slot</c>.</summary>
public readonly record struct SequenceSegment(int Slot, int Start, int Length)
{
    public int End => Start + Length;
}

/// <summary>How the flat token batch of one step [T] splits into sequences. A step may mix prefill chunks
/// (Length &gt; 1) and decode tokens (Length 1); the tokens of segment i follow those of segment i-1.</summary>
public sealed record StepLayout(IReadOnlyList<SequenceSegment> Segments)
{
    public int TokenCount { get; } = Segments.Sum(s => s.Length);

    /// <summary>Every sequence contributes exactly one token: attention runs as one batched computation.</summary>
    public bool IsPureDecode => Segments.All(s => s.Length == 1);

    /// <summary>Absolute position of every token, in batch order.</summary>
    public long[] Positions() => Segments.SelectMany(s => Enumerable.Range(s.Start, s.Length).Select(p => (long)p)).ToArray();

    /// <summary>Index in the flat batch of each segment's last token (where its next-token logits come from).</summary>
    public long[] LastTokenIndices()
    {
        var result = new long[Segments.Count];
        long offset = 0;
        for (int i = 0; i < Segments.Count; i++) { offset += Segments[i].Length; result[i] = offset - 1; }
        return result;
    }

    public Tensor PositionsTensor(Device device) => tensor(Positions(), ScalarType.Int64, device);

    public static StepLayout Single(int slot, int start, int length) => new([new SequenceSegment(slot, start, length)]);
}
