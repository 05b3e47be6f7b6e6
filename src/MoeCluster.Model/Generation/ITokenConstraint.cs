namespace MoeCluster.Model.Generation;

/// <summary>The tokens one sequence may take next (a grammar's state over the tokenizer's vocabulary). The scheduler
/// asks for the mask before each sampled token and feeds every accepted token back, in order.</summary>
public interface ITokenConstraint
{
    /// <summary>Sets allowed[t] (all false on entry) for every token id t that may come next, when
    /// <paramref name="tokensLeft"/> tokens (this one included) may still be generated.</summary>
    void FillAllowed(bool[] allowed, int tokensLeft);

    /// <summary>Advances past <paramref name="token"/>, which <see cref="FillAllowed"/> allowed.</summary>
    void Accept(int token);

    /// <summary>True once the output is complete: only a stop token may follow.</summary>
    bool IsComplete { get; }
}
