using System.Runtime.CompilerServices;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Grammar;

/// <summary>The vocabulary as a trie of token bytes, so a grammar's token mask is one walk that shares the work of
/// common prefixes and prunes a whole subtree at the first byte the grammar rejects. Special tokens are left out:
/// the detokenizer drops them, so they could not be part of the text the grammar checked. Built once per tokenizer.</summary>
public sealed class TokenTrie
{
    public sealed class TrieNode
    {
        public readonly SortedDictionary<byte, TrieNode> Children = new();
        public readonly List<int> Tokens = new();
    }

    static readonly ConditionalWeakTable<ModelTokenizer, TokenTrie> Cache = new();

    readonly byte[]?[] bytesOf;

    public TrieNode Root { get; } = new();
    public int VocabSize { get; }

    /// <summary>The bytes of a token in the trie; empty for one left out.</summary>
    public ReadOnlySpan<byte> Bytes(int id) => (uint)id < (uint)bytesOf.Length ? bytesOf[id] : [];

    public TokenTrie(IEnumerable<(int Id, byte[] Bytes)> tokens, int vocabSize)
    {
        VocabSize = vocabSize;
        bytesOf = new byte[]?[vocabSize];
        foreach (var (id, bytes) in tokens)
        {
            if (bytes.Length == 0 || id >= vocabSize) continue;
            bytesOf[id] = bytes;
            var node = Root;
            foreach (var b in bytes)
            {
                if (!node.Children.TryGetValue(b, out var child)) node.Children[b] = child = new TrieNode();
                node = child;
            }
            node.Tokens.Add(id);
        }
    }

    public static TokenTrie For(ModelTokenizer tokenizer, int vocabSize) => Cache.GetValue(tokenizer, t =>
        new TokenTrie(Enumerable.Range(0, t.VocabSize).Where(id => !t.IsSpecialToken(id)).Select(id => (id, t.TokenBytes(id))), vocabSize));
}
