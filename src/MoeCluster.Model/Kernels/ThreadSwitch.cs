namespace MoeCluster.Model.Kernels;

/// <summary>Undoes a per-thread switch when disposed (the A/B switches of the managed kernels, used by tests and
/// benchmarks in one process).</summary>
public sealed class ThreadSwitch(Action undo) : IDisposable
{
    public void Dispose() => undo();
}
