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
    /// <summary>Pure decode only: each sequence's KV-cache slot, [B] int64 (null otherwise). Built on first use: only
    /// the TorchSharp decode path reads it (<see cref="Kernels.DecodeAttention"/> takes the layout itself).</summary>
    public Tensor? Slots => Layout.IsPureDecode ? slots ??= Detached(() => tensor(Layout.Segments.Select(s => (long)s.Slot).ToArray(), ScalarType.Int64, device)) : null;
    /// <summary>Pure decode only: where each sequence's new key goes in its slot, [B] int64.</summary>
    public Tensor? WritePositions => Layout.IsPureDecode ? Positions : null;
    /// <summary>Pure decode only: keys each sequence may see among the first <see cref="KeyCount"/>, [B, 1, 1, L] bool.
    /// Built on first use, as <see cref="Slots"/>.</summary>
    public Tensor? Visible => Layout.IsPureDecode ? visible ??= Detached(BuildVisible) : null;
    /// <summary>Pure decode: L, the longest sequence's length after this step.</summary>
    public int KeyCount { get; }

    readonly Device device;
    readonly int? slidingWindow;
    Tensor? slots, visible;

    StepContext(StepLayout layout, RotaryEmbedding rotary, int? slidingWindow, Device device)
    {
        Layout = layout;
        this.device = device;
        this.slidingWindow = slidingWindow;
        using var scope = NewDisposeScope();
        Positions = layout.PositionsTensor(device).DetachFromDisposeScope();
        var (cos, sin) = rotary.Rows(Positions);
        Cos = cos.DetachFromDisposeScope();
        Sin = sin.DetachFromDisposeScope();
        if (layout.IsPureDecode) KeyCount = layout.Segments.Max(s => s.End);
    }

    Tensor BuildVisible()
    {
        int B = Layout.Segments.Count;
        var lengths = (Positions + 1).view(B, 1, 1, 1);
        var keyPos = arange(KeyCount, ScalarType.Int64, device).view(1, 1, 1, KeyCount);
        var v = keyPos < lengths;
        if (slidingWindow is int w) v = v & (keyPos >= lengths - w);
        return v;
    }

    /// <summary>Builds a step-long tensor outside whatever dispose scope the first user runs in.</summary>
    static Tensor Detached(Func<Tensor> build)
    {
        using var scope = NewDisposeScope();
        return build().DetachFromDisposeScope();
    }

    /// <summary>The shared tensors of one step over <paramref name="layout"/> (validated by the caller's KV cache).</summary>
    public static StepContext Create(StepLayout layout, RotaryEmbedding rotary, ModelConfig config, Device device) =>
        new(layout, rotary, config.SlidingWindow, device);

    public void Dispose()
    {
        Positions.Dispose(); Cos.Dispose(); Sin.Dispose(); slots?.Dispose(); visible?.Dispose();
    }
}
