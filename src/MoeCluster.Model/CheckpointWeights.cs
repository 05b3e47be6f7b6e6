using MoeCluster.Model.Checkpoints;
using static TorchSharp.torch;

namespace MoeCluster.Model;

/// <summary>Weights read from a safetensors checkpoint, one tensor at a time.</summary>
public sealed class CheckpointWeights(Checkpoint checkpoint) : IWeightSource
{
    public bool Contains(string name) => checkpoint.Contains(name);

    public Tensor Read(string name, long[] expectedShape, ScalarType dtype, Device device) =>
        checkpoint.Read(name, dtype, device, expectedShape);
}
