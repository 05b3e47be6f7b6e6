namespace MoeCluster.Model.Kernels;

/// <summary>A kernel's per-thread "off" switch: while a <see cref="Off"/> handle lives, <see cref="IsOff"/> is true on
/// the thread that took it, so one process can A/B a kernel against the TorchSharp path it replaces.</summary>
sealed class ThreadSwitch
{
    readonly ThreadLocal<bool> off = new();

    public bool IsOff => off.Value;

    public IDisposable Off()
    {
        bool was = off.Value;
        off.Value = true;
        return new Restore(() => off.Value = was);
    }

    sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
