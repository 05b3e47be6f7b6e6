namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// One tensor's header record. <paramref name="Begin"/> and <paramref name="End"/> are the header's
/// <c>data_offsets</c>: relative to the start of the data section, which follows the header.
/// </summary>
public sealed record TensorEntry(string Name, string DType, long[] Shape, long Begin, long End, string FilePath)
{
    public long ByteLength => End - Begin;

    public long ElementCount => Shape.Aggregate(1L, (n, d) => checked(n * d));

    /// <summary>The shape as the error messages print it: <c>[a, b]</c>.</summary>
    public string ShapeText => FormatShape(Shape);

    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
