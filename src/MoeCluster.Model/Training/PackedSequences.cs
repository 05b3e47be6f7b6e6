using static TorchSharp.torch;

namespace MoeCluster.Model.Training;

/// <summary>Documents tokenised and packed end to end with the end-of-text token after each, then cut into windows of
/// T + 1 tokens that start every T tokens, so each window gives T inputs and the T next tokens as targets.</summary>
public sealed class PackedSequences
{
    readonly int[] stream;

    public int SequenceLength { get; }
    public int Count { get; }
    /// <summary>Tokens in the packed stream (documents plus one end-of-text each).</summary>
    public long StreamTokens => stream.Length;
    /// <summary>Predicted tokens over all windows: Count × T.</summary>
    public long TargetTokens => (long)Count * SequenceLength;

    public PackedSequences(IEnumerable<IReadOnlyList<int>> documents, int endOfTextId, int sequenceLength)
    {
        var all = new List<int>();
        foreach (var d in documents) { all.AddRange(d); all.Add(endOfTextId); }
        stream = all.ToArray();
        SequenceLength = sequenceLength;
        // A trailing partial window is dropped so every batch has one shape.
        Count = stream.Length > sequenceLength ? (stream.Length - 1) / sequenceLength : 0;
    }

    /// <summary>Input and target ids of window i: (stream[iT .. iT+T), stream[iT+1 .. iT+T+1)).</summary>
    public (ReadOnlyMemory<int> Inputs, ReadOnlyMemory<int> Targets) Window(int i)
    {
        if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(i), $"window {i} outside [0, {Count})");
        int start = i * SequenceLength;
        return (stream.AsMemory(start, SequenceLength), stream.AsMemory(start + 1, SequenceLength));
    }

    /// <summary>Windows <paramref name="indices"/> as int64 tensors: inputs [B, T] and targets [B, T].</summary>
    public (Tensor Inputs, Tensor Targets) Batch(IReadOnlyList<int> indices)
    {
        int B = indices.Count, T = SequenceLength;
        var inputs = new long[B * T];
        var targets = new long[B * T];
        for (int b = 0; b < B; b++)
        {
            var (x, y) = Window(indices[b]);
            for (int t = 0; t < T; t++) { inputs[b * T + t] = x.Span[t]; targets[b * T + t] = y.Span[t]; }
        }
        return (tensor(inputs, [B, T], ScalarType.Int64), tensor(targets, [B, T], ScalarType.Int64));
    }

    /// <summary>Every target token of the first <paramref name="windows"/> windows, in order (for count-based baselines).</summary>
    public IEnumerable<int> Targets(int windows)
    {
        for (int i = 0; i < Math.Min(windows, Count); i++)
            foreach (var id in Window(i).Targets.ToArray()) yield return id;
    }

    /// <summary>All tokens of the packed stream (the unigram baseline counts these).</summary>
    public ReadOnlySpan<int> Stream => stream;
}
