using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Layers;

namespace MoeCluster.Runtime;

/// <summary>One node's view of the checkpoint: the config, and thread-safe tensor reads for whatever this node
/// hosts (actors load their own weights from it). Disposed with the node.</summary>
public sealed class ModelSource : IDisposable
{
    readonly Lazy<Checkpoint> checkpoint;

    public string Directory { get; }
    public ModelConfig Config { get; }
    public ModuleOptions Options { get; }
    public WeightNames Names { get; }

    public ModelSource(string directory, ModuleOptions options)
    {
        Directory = directory;
        Config = ModelConfig.Load(directory);
        Options = options;
        Names = new WeightNames(Config.Architecture);
        checkpoint = new Lazy<Checkpoint>(() => Checkpoint.Open(directory), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public IWeightSource Weights => new CheckpointWeights(checkpoint.Value);

    /// <summary>Loads a module's parameters stored under <paramref name="prefix"/>; returns the bytes loaded.</summary>
    public long Load(TorchSharp.torch.nn.Module module, string prefix) => Load(module, name => prefix + name);

    /// <summary>Loads a module whose tensors do not share one prefix (<see cref="WeightNames.HeadTensor"/>).</summary>
    public long Load(TorchSharp.torch.nn.Module module, Func<string, string> checkpointName)
    {
        ModuleWeights.Load(module, checkpointName, Weights, Options);
        return module.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
    }

    public void Dispose()
    {
        if (checkpoint.IsValueCreated) checkpoint.Value.Dispose();
    }
}
