using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Keys and values of one attention layer for a fixed number of sequence slots, allocated once
/// (as gpt-fast's setup_caches does) so decoding never concatenates. Shapes: [S slots, G kv heads, C capacity, Dh].
/// The owner (a model or an attention actor) disposes it.</summary>
public sealed class KvCache : IDisposable
{
    public Tensor Keys { get; }
    public Tensor Values { get; }
    public int Slots { get; }
    public int Capacity { get; }

    public KvCache(int slots, int kvHeads, int capacity, int headDim, ModuleOptions o)
    {
        Slots = slots;
        Capacity = capacity;
        Keys = zeros([slots, kvHeads, capacity, headDim], o.DType, o.Device);
        Values = zeros([slots, kvHeads, capacity, headDim], o.DType, o.Device);
    }

    public long Bytes => 2 * Keys.NumberOfElements * Keys.ElementSize;

    /// <summary>Bytes one cached token occupies in this layer (keys and values).</summary>
    public long BytesPerToken => Bytes / ((long)Slots * Capacity);

    /// <summary>Checks a step fits before any tensor is touched, so a bad request fails cleanly.</summary>
    public void Validate(StepLayout layout)
    {
        foreach (var s in layout.Segments)
        {
            if (s.Slot < 0 || s.Slot >= Slots) throw new ArgumentOutOfRangeException(nameof(layout), $"KV-cache slot {s.Slot} outside [0, {Slots})");
            if (s.End > Capacity) throw new ArgumentOutOfRangeException(nameof(layout), $"sequence in slot {s.Slot} needs {s.End} positions; the KV cache holds {Capacity}");
        }
    }

    /// <summary>Copies positions [0, <paramref name="tokens"/>) of one slot into another (a cached prompt prefix reused
    /// by a new sequence). Both slots must be inside the cache.</summary>
    public void CopyPrefix(int fromSlot, int toSlot, int tokens)
    {
        ValidateCopy(fromSlot, toSlot, tokens);
        if (tokens == 0 || fromSlot == toSlot) return;
        using var scope = NewDisposeScope();
        Keys[toSlot].narrow(1, 0, tokens).copy_(Keys[fromSlot].narrow(1, 0, tokens));
        Values[toSlot].narrow(1, 0, tokens).copy_(Values[fromSlot].narrow(1, 0, tokens));
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a copy outside the cache (slots or positions).</summary>
    public void ValidateCopy(int fromSlot, int toSlot, int tokens)
    {
        if (fromSlot < 0 || fromSlot >= Slots || toSlot < 0 || toSlot >= Slots || tokens < 0 || tokens > Capacity)
            throw new ArgumentOutOfRangeException(null,
                $"KV-cache copy of {tokens} positions from slot {fromSlot} to slot {toSlot} outside the cache ({Slots} slots of {Capacity})");
    }

    public void Dispose() { Keys.Dispose(); Values.Dispose(); }
}
