using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace MoeCluster.Placement;

/// <summary>A logical expert: the (layer, expert index) of the checkpoint. Its string form is <c>L{layer}.E{expert}</c>.</summary>
/// <remarks>Ordered by layer, then expert, which is the order every algorithm here visits experts in.</remarks>
public readonly record struct ExpertId : IComparable<ExpertId>, IParsable<ExpertId>
{
    /// <summary>Creates the id of expert <paramref name="expert"/> in layer <paramref name="layer"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Either index is negative.</exception>
    public ExpertId(int layer, int expert)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfNegative(expert);
        Layer = layer;
        Expert = expert;
    }

    /// <summary>Decoder layer index, from 0.</summary>
    public int Layer { get; }

    /// <summary>Expert index inside the layer, from 0.</summary>
    public int Expert { get; }

    /// <inheritdoc/>
    public int CompareTo(ExpertId other) =>
        Layer != other.Layer ? Layer.CompareTo(other.Layer) : Expert.CompareTo(other.Expert);

    /// <summary>The stable string form, e.g. <c>L0.E3</c>.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"L{Layer}.E{Expert}");

    /// <summary>Parses the form written by <see cref="ToString"/>.</summary>
    /// <exception cref="FormatException"><paramref name="text"/> is not of the form <c>L{layer}.E{expert}</c>.</exception>
    public static ExpertId Parse(string text) => Parse(text, null);

    /// <inheritdoc/>
    public static ExpertId Parse(string s, IFormatProvider? provider) =>
        TryParse(s, provider, out var id)
            ? id
            : throw new FormatException($"'{s}' is not an expert id: expected L{{layer}}.E{{expert}} with non-negative integers, e.g. L0.E3.");

    /// <summary>Parses the form written by <see cref="ToString"/>; false when <paramref name="text"/> is not one.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out ExpertId id) => TryParse(text, null, out id);

    /// <inheritdoc/>
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out ExpertId result)
    {
        result = default;
        if (s is null || s.Length < 5 || s[0] != 'L')
            return false;
        var dot = s.IndexOf(".E", StringComparison.Ordinal);
        if (dot < 2)
            return false;
        const NumberStyles digits = NumberStyles.None; // no signs, spaces or separators: the form is canonical
        if (!int.TryParse(s.AsSpan(1, dot - 1), digits, CultureInfo.InvariantCulture, out var layer)
            || !int.TryParse(s.AsSpan(dot + 2), digits, CultureInfo.InvariantCulture, out var expert))
            return false;
        result = new ExpertId(layer, expert);
        return true;
    }

    /// <summary>Orders by layer, then expert.</summary>
    public static bool operator <(ExpertId left, ExpertId right) => left.CompareTo(right) < 0;

    /// <summary>Orders by layer, then expert.</summary>
    public static bool operator >(ExpertId left, ExpertId right) => left.CompareTo(right) > 0;

    /// <summary>Orders by layer, then expert.</summary>
    public static bool operator <=(ExpertId left, ExpertId right) => left.CompareTo(right) <= 0;

    /// <summary>Orders by layer, then expert.</summary>
    public static bool operator >=(ExpertId left, ExpertId right) => left.CompareTo(right) >= 0;
}
