using TorchSharp;

namespace MoeCluster.Model;

/// <summary>Where module weights come from: a checkpoint on disk, or an in-memory dictionary in tests.
/// Implementations convert to the requested dtype/device and reject a tensor whose shape differs, naming it.</summary>
public interface IWeightSource
{
    bool Contains(string name);
    torch.Tensor Read(string name, long[] expectedShape, torch.ScalarType dtype, torch.Device device);
}
