using static TorchSharp.torch;

namespace MoeCluster.Model;

/// <summary>An in-memory weight source (tests; a model handed over without touching disk). Does not own the tensors.</summary>
public sealed class DictionaryWeights(IReadOnlyDictionary<string, Tensor> tensors, string description = "in-memory weights") : IWeightSource
{
    public bool Contains(string name) => tensors.ContainsKey(name);

    public Tensor Read(string name, long[] expectedShape, ScalarType dtype, Device device)
    {
        if (!tensors.TryGetValue(name, out var t)) throw new KeyNotFoundException($"tensor '{name}' not found in {description}");
        if (!t.shape.SequenceEqual(expectedShape))
            throw new InvalidDataException($"tensor '{name}' in {description} has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", expectedShape)}]");
        return t.to(dtype, device, copy: true);
    }
}
