using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model;

/// <summary>Loads a module's parameters by name: parameter "q_proj.weight" under prefix "model.layers.3.self_attn."
/// is checkpoint tensor "model.layers.3.self_attn.q_proj.weight". This is how one expert, one attention layer or the
/// whole model is loaded — each reads exactly its own tensors.</summary>
public static class ModuleWeights
{
    /// <returns>The checkpoint names that were read.</returns>
    public static IReadOnlyList<string> Load(nn.Module module, string prefix, IWeightSource source, Layers.ModuleOptions o, Action<int, int>? progress = null) =>
        Load(module, name => prefix + name, source, o, progress);

    /// <summary>Same, for a block whose tensors do not share one prefix (the output head): <paramref name="checkpointName"/>
    /// maps each parameter name to its tensor's name.</summary>
    public static IReadOnlyList<string> Load(nn.Module module, Func<string, string> checkpointName, IWeightSource source, Layers.ModuleOptions o, Action<int, int>? progress = null)
    {
        var read = new List<string>();
        using var _ = no_grad();
        var parameters = module.named_parameters().ToList();
        foreach (var (name, parameter) in parameters)
        {
            progress?.Invoke(read.Count, parameters.Count);
            var full = checkpointName(name);
            using var value = source.Read(full, parameter.shape, o.DType, o.Device);
            parameter.copy_(value);
            read.Add(full);
        }
        progress?.Invoke(read.Count, parameters.Count);
        return read;
    }

    /// <summary>Parameters keyed by their checkpoint names (what the trainer saves).</summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> Named(nn.Module module, string prefix = "") =>
        module.named_parameters().Select(p => new KeyValuePair<string, Tensor>(prefix + p.name, p.parameter));

    /// <summary>Random weights (normal, std 0.02; norms at 1) for benchmarks and training from scratch.</summary>
    public static void InitializeRandom(nn.Module module, long seed, double std = 0.02)
    {
        using var _ = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (name.EndsWith("norm.weight") || name.EndsWith("layernorm.weight")) parameter.fill_(1.0);
            else if (name.EndsWith(".bias")) parameter.zero_();
            else
            {
                using var t = randn(parameter.shape, ScalarType.Float32, generator: generator) * std;
                parameter.copy_(t);
            }
        }
    }
}
