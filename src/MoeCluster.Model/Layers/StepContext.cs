using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>What every layer of one step shares, built once per step instead of once per layer: token positions,
/// the rotary rows at those positions, and for pure-decode steps the KV-cache write indices and the key-visibility
/// mask. The model core builds one per <c>Forward</c>; an attention actor builds one per step it receives (its layer is
/// the only one in its process). The creator disposes it after the step.
/// Legend: T tokens in the step, B sequences (= T when decoding), L keys visible to the longest sequence, Dh head dim.</summary>
public sealed class StepContext : IDisposable
{
    public StepLayout Layout { get; }
    /// <summary>Absolute position of every token, [T] int64.</summary>
    public Tensor Positions { get; }
    /// <summary>Rotary cos and sin rows at <see cref="Positions"/>, [T, 1, Dh] in the compute dtype.</summary>
    public Tensor Cos { get; }
    public Tensor Sin { get; }
    /// <summary>Pure decode only: each sequence's KV-cache slot, [B] int64 (null otherwise).</summary>
    public Tensor? Slots { get; }
    /// <summary>Pure decode only: where each sequence's new key goes in its slot, [B] int64.</summary>
    public Tensor? WritePositions { get; }
    /// <summary>Pure decode only: keys each sequence may see among the first <see cref="KeyCount"/>, [B, 1, 1, L] bool.</summary>
    public Tensor? Visible { get; }
    /// <summary>Pure decode: L, the longest sequence's length after this step.</summary>
    public int KeyCount { get; }

    StepContext(StepLayout layout, RotaryEmbedding rotary, int? slidingWindow, Device device)
    {
        Layout = layout;
        using var scope = NewDisposeScope();
        Positions = layout.PositionsTensor(device).DetachFromDisposeScope();
        var (cos, sin) = rotary.Rows(Positions);
        Cos = cos.DetachFromDisposeScope();
        Sin = sin.DetachFromDisposeScope();
        if (!layout.IsPureDecode) return;
        int B = layout.Segments.Count;
        KeyCount = layout.Segments.Max(s => s.End);
        Slots = tensor(layout.Segments.Select(s => (long)s.Slot).ToArray(), ScalarType.Int64, device).DetachFromDisposeScope();
        WritePositions = Positions;
        var lengths = (Positions + 1).view(B, 1, 1, 1);
        var keyPos = arange(KeyCount, ScalarType.Int64, device).view(1, 1, 1, KeyCount);
        var visible = keyPos < lengths;
        if (slidingWindow is int w) visible = visible & (keyPos >= lengths - w);
        Visible = visible.DetachFromDisposeScope();
    }

    /// <summary>The shared tensors of one step over <paramref name="layout"/> (validated by the caller's KV cache).</summary>
    public static StepContext Create(StepLayout layout, RotaryEmbedding rotary, ModelConfig config, Device device) =>
        new(layout, rotary, config.SlidingWindow, device);

    public void Dispose()
    {
        Positions.Dispose(); Cos.Dispose(); Sin.Dispose(); Slots?.Dispose(); Visible?.Dispose();
    }
}
