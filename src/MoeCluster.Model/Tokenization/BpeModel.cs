using System.Collections.Concurrent;
using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Hugging Face tokenizers' BPE model (tokenizers/src/models/bpe/model.rs and word.rs), run on one pre-tokenized
/// piece at a time: the piece starts as one symbol per character (unknown characters become their
/// <c>&lt;0xNN&gt;</c> byte tokens with <c>byte_fallback</c>, else the unknown token, fused when <c>fuse_unk</c>), then
/// the pair with the lowest merge rank is merged, leftmost first among equal ranks, until no pair of neighbours has a
/// merge. Thread-safe.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 10_000;
    /// <summary>HF caches words up to this many characters only.</summary>
    private const int MaxCachedLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    private readonly string? _continuingSubwordPrefix;
    private readonly string? _endOfWordSuffix;
    private readonly int[]? _byteIds;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string? unkToken,
        bool byteFallback, bool fuseUnk, bool ignoreMerges, string? continuingSubwordPrefix, string? endOfWordSuffix, string path)
    {
        _vocab = vocab;
        _byteFallback = byteFallback;
        _fuseUnk = fuseUnk;
        _ignoreMerges = ignoreMerges;
        _continuingSubwordPrefix = continuingSubwordPrefix;
        _endOfWordSuffix = endOfWordSuffix;
        if (unkToken is not null)
        {
            _unkId = vocab.TryGetValue(unkToken, out int unk) ? unk
                : throw new InvalidDataException($"{path}: model.unk_token \"{unkToken}\" is not in model.vocab.");
        }
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        int prefixLength = continuingSubwordPrefix?.Length ?? 0;
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int a = vocab.TryGetValue(left, out int l) ? l : throw MergeError(path, rank, left);
            int b = vocab.TryGetValue(right, out int r) ? r : throw MergeError(path, rank, right);
            string merged = prefixLength > 0 && right.StartsWith(continuingSubwordPrefix!, StringComparison.Ordinal)
                ? left + right[prefixLength..]
                : left + right;
            int id = vocab.TryGetValue(merged, out int m) ? m : throw MergeError(path, rank, merged);
            // A repeated pair keeps its last rank, as HF's HashMap collect does.
            _merges[Key(a, b)] = (rank, id);
        }
        if (byteFallback)
        {
            _byteIds = new int[256];
            for (int b = 0; b < 256; b++)
            {
                _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
            }
        }
    }

    private static InvalidDataException MergeError(string path, int rank, string token) =>
        new($"{path}: model.merges[{rank}] needs \"{token}\", which is not in model.vocab.");

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    public void Encode(string piece, List<int> ids)
    {
        if (piece.Length == 0)
        {
            return;
        }
        if (_ignoreMerges && _vocab.TryGetValue(piece, out int whole))
        {
            ids.Add(whole);
            return;
        }
        if (_cache.TryGetValue(piece, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var word = MergeWord(piece);
        if (piece.Length <= MaxCachedLength)
        {
            if (_cache.Count >= CacheCapacity)
            {
                _cache.Clear();
            }
            _cache.TryAdd(piece, word);
        }
        ids.AddRange(word);
    }

    private struct Symbol
    {
        public int Id;
        public int Prev;
        public int Next;
        public bool Removed;
    }

    private int[] MergeWord(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        (int Id, bool Pending) unk = (0, false);
        int i = 0;
        while (i < word.Length)
        {
            int length = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            string s = word.Substring(i, length);
            if (i > 0 && _continuingSubwordPrefix is not null)
            {
                s = _continuingSubwordPrefix + s;
            }
            if (i + length == word.Length && _endOfWordSuffix is not null)
            {
                s += _endOfWordSuffix;
            }
            i += length;
            if (_vocab.TryGetValue(s, out int id))
            {
                if (unk.Pending)
                {
                    Add(symbols, unk.Id);
                    unk.Pending = false;
                }
                Add(symbols, id);
                continue;
            }
            if (_byteIds is not null && TryBytes(s, out var bytes))
            {
                // As in HF, byte tokens do not flush a pending unknown token first.
                foreach (int b in bytes)
                {
                    Add(symbols, b);
                }
                continue;
            }
            if (_unkId is int unkId)
            {
                if (unk.Pending && !_fuseUnk)
                {
                    Add(symbols, unk.Id);
                }
                unk = (unkId, true);
            }
        }
        if (unk.Pending)
        {
            Add(symbols, unk.Id);
        }
        MergeAll(symbols);
        var result = new List<int>(symbols.Count);
        foreach (var symbol in symbols)
        {
            if (!symbol.Removed)
            {
                result.Add(symbol.Id);
            }
        }
        return [.. result];
    }

    private bool TryBytes(string s, out int[] ids)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        ids = new int[bytes.Length];
        for (int k = 0; k < bytes.Length; k++)
        {
            ids[k] = _byteIds![bytes[k]];
            if (ids[k] < 0)
            {
                return false;
            }
        }
        return true;
    }

    private static void Add(List<Symbol> symbols, int id)
    {
        int index = symbols.Count;
        if (index > 0)
        {
            var last = symbols[index - 1];
            last.Next = index;
            symbols[index - 1] = last;
        }
        symbols.Add(new Symbol { Id = id, Prev = index - 1, Next = -1 });
    }

    /// <summary>word.rs merge_all: a min-heap on (rank, position); stale entries are skipped when popped.</summary>
    private void MergeAll(List<Symbol> symbols)
    {
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (int k = 0; k + 1 < symbols.Count; k++)
        {
            if (_merges.TryGetValue(Key(symbols[k].Id, symbols[k + 1].Id), out var m))
            {
                queue.Enqueue((k, m.NewId), (m.Rank, k));
            }
        }
        while (queue.TryDequeue(out var top, out _))
        {
            var current = symbols[top.Pos];
            if (current.Removed || current.Next == -1)
            {
                continue;
            }
            int nextPos = current.Next;
            var right = symbols[nextPos];
            if (!_merges.TryGetValue(Key(current.Id, right.Id), out var check) || check.NewId != top.NewId)
            {
                continue;
            }
            current.Id = top.NewId;
            current.Next = right.Next;
            symbols[top.Pos] = current;
            right.Removed = true;
            symbols[nextPos] = right;
            if (right.Next >= 0)
            {
                var after = symbols[right.Next];
                after.Prev = top.Pos;
                symbols[right.Next] = after;
            }
            if (current.Prev >= 0 && _merges.TryGetValue(Key(symbols[current.Prev].Id, current.Id), out var before))
            {
                queue.Enqueue((current.Prev, before.NewId), (before.Rank, current.Prev));
            }
            if (current.Next >= 0 && _merges.TryGetValue(Key(current.Id, symbols[current.Next].Id), out var next))
            {
                queue.Enqueue((top.Pos, next.NewId), (next.Rank, top.Pos));
            }
        }
    }
}
