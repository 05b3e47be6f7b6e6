using MoeCluster.Model.Generation;

namespace MoeCluster.Model.Grammar;

/// <summary>Constrained decoding: before each token, the tokens whose bytes the grammar accepts from the current
/// parses (a walk of the <see cref="TokenTrie"/>), and of those only the ones after which the output can still be
/// completed in the tokens left (every byte is a token in byte-level vocabularies, so the shortest completion fits when
/// its length in bytes does). So the output is complete and valid by max_tokens whenever max_tokens covers the
/// shortest valid output (below it, the output keeps to the grammar and is cut at max_tokens). Stop tokens are allowed once the value may end (a top-level number could still grow).</summary>
public sealed class GrammarConstraint(GrammarNode root, TokenTrie trie, IReadOnlyList<int> stopTokenIds) : ITokenConstraint
{
    readonly JsonMatcher matcher = new(root);

    public void FillAllowed(bool[] allowed, int tokensLeft)
    {
        Walk(trie.Root, matcher.Parses, allowed, tokensLeft - 1);
        // The shortest completion no longer fits (max_tokens below it from the start): keep to the grammar and end
        // with finish_reason "length", as an unconstrained output would.
        if (!matcher.CanEnd && Array.IndexOf(allowed, true) < 0) Walk(trie.Root, matcher.Parses, allowed, int.MaxValue);
        if (matcher.CanEnd)
            foreach (int t in stopTokenIds)
                if ((uint)t < (uint)allowed.Length) allowed[t] = true;
    }

    static void Walk(TokenTrie.TrieNode node, IReadOnlyList<ParseStack?> parses, bool[] allowed, int budgetAfter)
    {
        foreach (var (b, child) in node.Children)
        {
            var next = JsonMatcher.Step(parses, b);
            if (next.Count == 0) continue;
            if (child.Tokens.Count > 0 && JsonMatcher.MinRemainingOf(next) <= budgetAfter)
                foreach (int t in child.Tokens) allowed[t] = true;
            if (child.Children.Count > 0) Walk(child, next, allowed, budgetAfter);
        }
    }

    public void Accept(int token)
    {
        if (stopTokenIds.Contains(token)) return;
        if (!matcher.TryAdvance(trie.Bytes(token)))
            throw new InvalidOperationException($"token {token} was not allowed by the grammar");
    }

    public bool IsComplete => matcher.IsClosed;
}
