using System.Buffers.Binary;
using System.Security.Cryptography;

namespace MoeCluster.Model.Generation;

/// <summary>
/// Which prompt prefixes the KV-cache slots hold, so a request starting with the same tokens reuses their keys and
/// values instead of prefilling them again (vLLM's automatic prefix caching, on a slot-allocated cache).
/// <list type="bullet">
/// <item><b>Block</b>: <see cref="BlockSize"/> consecutive tokens at a block-aligned position. Only full blocks are cached.</item>
/// <item><b>Block hash</b>: chained as vLLM's: hash(parent block's hash, this block's tokens), so equal hashes mean equal
/// tokens from position 0 on, and a slot holding block i's hash holds blocks 0..i too (SHA-256, as vLLM's
/// <c>sha256</c> prefix hashing, so a collision cannot silently splice two prompts).</item>
/// <item><b>Holder</b>: a slot whose KV cache holds the block, written by a completed step. A slot owned by a running
/// sequence is pinned (read by copying its blocks into another slot, never given away); a free slot keeps its blocks
/// until it is reused, least recently used first: the cached prefixes live within the KV budget of the slots.</item>
/// </list>
/// Pure bookkeeping, no tensors: the engine or the attention entities copy the blocks. Not thread-safe.
/// </summary>
public sealed class PrefixCache
{
    readonly List<UInt128>[] held;
    readonly Dictionary<UInt128, HashSet<int>> holders = new();
    readonly long[] lastUsed;
    long clock;

    public PrefixCache(int slots, int blockSize)
    {
        if (blockSize is < 1 or > 256) throw new ArgumentOutOfRangeException(nameof(blockSize), $"the prefix-cache block size must be 1 to 256 tokens, got {blockSize}");
        BlockSize = blockSize;
        held = Enumerable.Range(0, slots).Select(_ => new List<UInt128>()).ToArray();
        lastUsed = new long[slots];
    }

    public int BlockSize { get; }

    /// <summary>The longest cached prefix of <paramref name="tokenAt"/>[0, <paramref name="count"/>) in any slot
    /// <paramref name="usable"/> accepts: its length in blocks and the holders of its last block (empty when none).</summary>
    public (int Blocks, IReadOnlyCollection<int> Holders) Match(Func<int, int> tokenAt, int count, Func<int, bool> usable)
    {
        int blocks = 0;
        IReadOnlyCollection<int> found = [];
        UInt128 parent = 0;
        for (int b = 0; (b + 1) * BlockSize <= count; b++)
        {
            parent = Hash(parent, tokenAt, b * BlockSize, BlockSize);
            if (!holders.TryGetValue(parent, out var slots)) break;
            var ok = slots.Where(usable).ToArray();
            if (ok.Length == 0) break;
            blocks = b + 1;
            found = ok;
        }
        return (blocks, found);
    }

    /// <summary>Records the full blocks of the first <paramref name="cached"/> tokens a completed step left in the slot.</summary>
    public void Extend(int slot, Func<int, int> tokenAt, int cached)
    {
        var list = held[slot];
        while ((list.Count + 1) * BlockSize <= cached)
        {
            var h = Hash(list.Count == 0 ? 0 : list[^1], tokenAt, list.Count * BlockSize, BlockSize);
            list.Add(h);
            if (!holders.TryGetValue(h, out var set)) holders[h] = set = new HashSet<int>();
            set.Add(slot);
        }
        Touch(slot);
    }

    /// <summary>The slot keeps only its first <paramref name="blocks"/> blocks (its next owner writes from there on).</summary>
    public void Truncate(int slot, int blocks)
    {
        var list = held[slot];
        for (int i = list.Count - 1; i >= blocks; i--)
        {
            var set = holders[list[i]];
            set.Remove(slot);
            if (set.Count == 0) holders.Remove(list[i]);
            list.RemoveAt(i);
        }
    }

    /// <summary>Every slot's blocks are gone (the KV caches were lost).</summary>
    public void Clear()
    {
        foreach (var list in held) list.Clear();
        holders.Clear();
    }

    public void Touch(int slot) => lastUsed[slot] = ++clock;

    /// <summary>The free slot to give a new sequence that found nothing to reuse: an empty one, else the least recently used.</summary>
    public int Evictable(IEnumerable<int> free) => free.OrderBy(s => held[s].Count > 0).ThenBy(s => lastUsed[s]).ThenBy(s => s).First();

    static UInt128 Hash(UInt128 parent, Func<int, int> tokenAt, int start, int length)
    {
        Span<byte> data = stackalloc byte[16 + 4 * length];
        BinaryPrimitives.WriteUInt128LittleEndian(data, parent);
        for (int i = 0; i < length; i++) BinaryPrimitives.WriteInt32LittleEndian(data[(16 + 4 * i)..], tokenAt(start + i));
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(data, digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }
}
