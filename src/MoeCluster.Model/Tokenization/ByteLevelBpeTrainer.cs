using System.Text;
using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// Byte-level BPE training over unique words with counts. Pair counts are kept incrementally: a merge only revisits
/// the words that hold the merged pair (found through a pair -> words index), and a max-heap with lazy deletion finds
/// the next best pair. Cost is about proportional to the text touched by merges, not merges x corpus.
/// </summary>
internal static class ByteLevelBpeTrainer
{
    private static readonly Regex Gpt2Split = new(TokenizerJsonFile.Gpt2SplitPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    private sealed class Word(int[] symbols, long count)
    {
        public int[] Symbols = symbols;
        public int Length = symbols.Length;
        public readonly long Count = count;
    }

    public static (Dictionary<string, int> vocab, List<(string, string)> merges) Train(IEnumerable<string> corpus, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        if (vocabSize < 256)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "Byte-level BPE needs at least the 256 byte symbols.");
        }

        var tokens = new List<string>(vocabSize);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++)
        {
            string symbol = ByteLevelAlphabet.CharFor((byte)b).ToString();
            vocab[symbol] = b;
            tokens.Add(symbol);
        }

        var words = CountWords(corpus);
        var pairCounts = new Dictionary<(int, int), long>();
        var pairWords = new Dictionary<(int, int), HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            AddPairs(words[w], w, +1, pairCounts, pairWords, changed: null);
        }

        // Max count first, then the smaller pair; stale entries are skipped when popped.
        var heap = new PriorityQueue<(int, int), (long Count, int A, int B)>(
            Comparer<(long Count, int A, int B)>.Create((x, y) =>
                x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.A != y.A ? x.A.CompareTo(y.A) : x.B.CompareTo(y.B)));
        foreach (var (pair, count) in pairCounts)
        {
            heap.Enqueue(pair, (count, pair.Item1, pair.Item2));
        }

        var merges = new List<(string, string)>();
        var changed = new HashSet<(int, int)>();
        while (vocab.Count < vocabSize && heap.TryDequeue(out var best, out var priority))
        {
            if (!pairCounts.TryGetValue(best, out long current) || current != priority.Count || current <= 0)
            {
                continue;
            }
            string merged = tokens[best.Item1] + tokens[best.Item2];
            // Two merge paths can spell the same token ("ab"+"c", "a"+"bc"); they share one id, as in HF.
            if (!vocab.TryGetValue(merged, out int newId))
            {
                newId = tokens.Count;
                tokens.Add(merged);
                vocab[merged] = newId;
            }
            merges.Add((tokens[best.Item1], tokens[best.Item2]));

            changed.Clear();
            foreach (int w in pairWords[best].ToArray())
            {
                var word = words[w];
                if (!Contains(word, best))
                {
                    continue;
                }
                AddPairs(word, w, -1, pairCounts, pairWords, changed);
                Merge(word, best, newId);
                AddPairs(word, w, +1, pairCounts, pairWords, changed);
            }
            pairWords.Remove(best);
            pairCounts.Remove(best);
            foreach (var pair in changed)
            {
                if (pairCounts.TryGetValue(pair, out long count) && count > 0)
                {
                    heap.Enqueue(pair, (count, pair.Item1, pair.Item2));
                }
            }
        }
        return (vocab, merges);
    }

    private static List<Word> CountWords(IEnumerable<string> corpus)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string text in corpus)
        {
            foreach (Match match in Gpt2Split.Matches(text))
            {
                counts[match.Value] = counts.GetValueOrDefault(match.Value) + 1;
            }
        }
        // Sorted so word order (and so tie-breaking inside the pair index) does not depend on hashing.
        return [.. counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new Word([.. Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b)], kv.Value))];
    }

    private static void AddPairs(Word word, int index, int sign, Dictionary<(int, int), long> counts,
        Dictionary<(int, int), HashSet<int>> where, HashSet<(int, int)>? changed)
    {
        for (int i = 0; i + 1 < word.Length; i++)
        {
            var pair = (word.Symbols[i], word.Symbols[i + 1]);
            counts[pair] = counts.GetValueOrDefault(pair) + sign * word.Count;
            changed?.Add(pair);
            if (sign > 0)
            {
                if (!where.TryGetValue(pair, out var set))
                {
                    where[pair] = set = [];
                }
                set.Add(index);
            }
        }
    }

    private static bool Contains(Word word, (int A, int B) pair)
    {
        for (int i = 0; i + 1 < word.Length; i++)
        {
            if (word.Symbols[i] == pair.A && word.Symbols[i + 1] == pair.B)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Replaces each non-overlapping (A, B), left to right, with <paramref name="newId"/>.</summary>
    private static void Merge(Word word, (int A, int B) pair, int newId)
    {
        var s = word.Symbols;
        int write = 0;
        for (int read = 0; read < word.Length; read++)
        {
            if (read + 1 < word.Length && s[read] == pair.A && s[read + 1] == pair.B)
            {
                s[write++] = newId;
                read++;
            }
            else
            {
                s[write++] = s[read];
            }
        }
        word.Length = write;
    }
}
