using TorchSharp;

namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// An element type of the safetensors format. <see cref="Rank"/> is the position in the reference library's
/// <c>Dtype</c> enum, whose order the writer follows (tensors laid out by descending rank, then by name).
/// <see cref="ScalarType"/> is null for types TorchSharp has no tensor type for (unsigned wider than a byte, FP8,
/// FP6, FP4): their headers parse, reading them is refused.
/// </summary>
internal sealed record SafetensorsDType(string Name, int Bits, int Rank, torch.ScalarType? ScalarType)
{
    // Order matters: it is the reference `Dtype` enum's declaration order.
    static readonly (string Name, int Bits, torch.ScalarType? Type)[] Declared =
    [
        ("BOOL", 8, torch.ScalarType.Bool),
        ("F4", 4, null),
        ("F6_E2M3", 6, null),
        ("F6_E3M2", 6, null),
        ("U8", 8, torch.ScalarType.Byte),
        ("I8", 8, torch.ScalarType.Int8),
        ("F8_E5M2", 8, null),
        ("F8_E4M3", 8, null),
        ("F8_E8M0", 8, null),
        ("F8_E4M3FNUZ", 8, null),
        ("F8_E5M2FNUZ", 8, null),
        ("I16", 16, torch.ScalarType.Int16),
        ("U16", 16, null),
        ("F16", 16, torch.ScalarType.Float16),
        ("BF16", 16, torch.ScalarType.BFloat16),
        ("I32", 32, torch.ScalarType.Int32),
        ("U32", 32, null),
        ("F32", 32, torch.ScalarType.Float32),
        ("C64", 64, torch.ScalarType.ComplexFloat32),
        ("F64", 64, torch.ScalarType.Float64),
        ("I64", 64, torch.ScalarType.Int64),
        ("U64", 64, null),
    ];

    static readonly Dictionary<string, SafetensorsDType> ByName =
        Declared.Select((d, rank) => new SafetensorsDType(d.Name, d.Bits, rank, d.Type)).ToDictionary(d => d.Name, StringComparer.Ordinal);

    public static IEnumerable<string> Names => Declared.Select(d => d.Name);

    public static bool TryParse(string name, out SafetensorsDType dtype) => ByName.TryGetValue(name, out dtype!);

    public static SafetensorsDType Parse(string name) =>
        TryParse(name, out var dtype) ? dtype : throw new ArgumentException($"unknown safetensors dtype '{name}'", nameof(name));

    /// <summary>The on-disk type a tensor of <paramref name="type"/> is written as.</summary>
    public static SafetensorsDType For(torch.ScalarType type) =>
        ByName.Values.FirstOrDefault(d => d.ScalarType == type)
        ?? throw new ArgumentException($"tensors of type {type} cannot be stored in safetensors (no matching dtype)", nameof(type));

    /// <summary>Bytes that <paramref name="elements"/> elements occupy, or null when they end inside a byte.</summary>
    public long? ByteLength(long elements)
    {
        long bits = checked(elements * Bits);
        return bits % 8 == 0 ? bits / 8 : null;
    }
}
