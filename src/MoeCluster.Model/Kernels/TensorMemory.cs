using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>The address of a CPU tensor's first element, for managed kernels that read or write libtorch's memory in
/// place (TorchSharp's accessors copy, or do not know bfloat16).</summary>
static unsafe class TensorMemory
{
    [DllImport("LibTorchSharp")]
    static extern nint THSTensor_data(nint handle);

    public static void* Data(Tensor t) => (void*)THSTensor_data(t.Handle);
}
