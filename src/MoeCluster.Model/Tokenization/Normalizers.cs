using System.Text;
using MoeCluster.Model.Tokenization.Unicode;

namespace MoeCluster.Model.Tokenization;

/// <summary>One step of a tokenizer.json <c>normalizer</c>, applied to the text between added tokens, as HF
/// tokenizers' normalizers do (tokenizers/src/normalizers).</summary>
internal abstract record NormalizerStep
{
    public abstract string Apply(string text);
}

/// <summary>NFC, NFD, NFKC or NFKD, by the managed <see cref="UnicodeNormalization"/>.</summary>
internal sealed record UnicodeFormStep(NormalizationForm Form) : NormalizerStep
{
    public override string Apply(string text) => UnicodeNormalization.Normalize(text, Form);
}

/// <summary>Lowercase: each character's full lowercase mapping (Rust's char::to_lowercase).</summary>
internal sealed record LowercaseStep : NormalizerStep
{
    public override string Apply(string text) => UnicodeNormalization.ToLower(text);
}

/// <summary>Strip: whitespace (Unicode White_Space, as Rust's char::is_whitespace) off either end.</summary>
internal sealed record StripStep(bool Left, bool Right) : NormalizerStep
{
    public override string Apply(string text) => (Left, Right) switch
    {
        (true, true) => text.Trim(),
        (true, false) => text.TrimStart(),
        (false, true) => text.TrimEnd(),
        _ => text,
    };
}

/// <summary>Replace: every non-overlapping match of a literal string or a regex becomes <see cref="Content"/>.</summary>
internal sealed record ReplaceStep(string? Literal, TokenizerRegex? Regex, string Content) : NormalizerStep
{
    public override string Apply(string text)
    {
        if (Literal is not null)
        {
            return Literal.Length == 0 ? text : text.Replace(Literal, Content, StringComparison.Ordinal);
        }
        var sb = new StringBuilder(text.Length);
        int position = 0;
        foreach (var (start, end) in Regex!.Matches(text))
        {
            sb.Append(text, position, start - position).Append(Content);
            position = end;
        }
        return sb.Append(text, position, text.Length - position).ToString();
    }
}

/// <summary>Prepend: <see cref="Prefix"/> before any non-empty text (Llama's "▁").</summary>
internal sealed record PrependStep(string Prefix) : NormalizerStep
{
    public override string Apply(string text) => text.Length == 0 ? text : Prefix + text;
}

internal sealed record SequenceStep(IReadOnlyList<NormalizerStep> Steps) : NormalizerStep
{
    public override string Apply(string text)
    {
        foreach (var step in Steps)
        {
            text = step.Apply(text);
        }
        return text;
    }
}
