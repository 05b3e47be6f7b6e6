using System.Runtime.InteropServices;

namespace MoeCluster.Model.Kernels;

/// <summary>
/// The AVX512-BF16 dot-product tile of <see cref="SmallMatMul"/> (Kernels/Native/bfloat16_dot.c, built into
/// libmoecluster_kernels.so beside the assemblies). .NET 10 has no intrinsic for vdpbf16ps, the instruction that
/// multiplies bfloat16 pairs exactly into float32 sums: the managed tile widens each bfloat16 weight vector and runs two
/// FMAs, so it computes at the float32 rate, and from 8 rows oneDNN used to win on compute. With this tile the kernel
/// takes bfloat16 calls up to <see cref="SmallMatMul.MaxRowsNativeBFloat16"/> rows. Where the library was not built (no C compiler)
/// or the CPU lacks the instruction, <see cref="Available"/> is false, <see cref="Unavailable"/> says why, and the
/// managed kernel runs as before.
/// </summary>
public static unsafe class NativeBFloat16Dot
{
    const string Library = "libmoecluster_kernels.so";

    static readonly delegate* unmanaged[SuppressGCTransition]<ushort*, int, int, ushort*, ushort*, ushort*, ushort*, float*, byte*, long, void> dot4;

    /// <summary>Why the tile is not available (null when it is).</summary>
    public static string? Unavailable { get; }

    /// <summary>The library loaded and the CPU has AVX512-BF16.</summary>
    public static bool Available => Unavailable is null;

    /// <summary>Off: bfloat16 calls use the managed tile and its row limit (MOECLUSTER_NATIVE_BF16=0 at start, or
    /// setting this, for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_NATIVE_BF16") != "0";

    /// <summary>Whether the kernel sends bfloat16 × bfloat16 calls here.</summary>
    public static bool Usable => Enabled && Available;

    static NativeBFloat16Dot()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
        {
            Unavailable = "the native kernels are built for Linux x64 only";
            return;
        }
        var path = Path.Combine(Path.GetDirectoryName(typeof(NativeBFloat16Dot).Assembly.Location) ?? AppContext.BaseDirectory, Library);
        if (!NativeLibrary.TryLoad(path, out var handle))
        {
            Unavailable = $"{path} is missing or does not load (the build found no C compiler?)";
            return;
        }
        var supported = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "moecluster_bf16_dot_supported");
        if (supported() == 0)
        {
            Unavailable = "this CPU has no AVX512-BF16";
            return;
        }
        dot4 = (delegate* unmanaged[SuppressGCTransition]<ushort*, int, int, ushort*, ushort*, ushort*, ushort*, float*, byte*, long, void>)
            NativeLibrary.GetExport(handle, "moecluster_bf16_dot4");
    }

    /// <summary>r[m·4 + i] = x[m] · w_i for M bfloat16 rows x [M, K] in plain order and four weight rows, prefetching
    /// <paramref name="nextBytes"/> from <paramref name="next"/> along the way (see bfloat16_dot.c). A call is a few
    /// microseconds at most, so it skips the GC transition. Only where <see cref="Available"/> (the caller checks once
    /// per product, not per block).</summary>
    internal static void Dot4(ushort* x, int M, int K, byte* w0, byte* w1, byte* w2, byte* w3, float* r, byte* next, long nextBytes) =>
        dot4(x, M, K, (ushort*)w0, (ushort*)w1, (ushort*)w2, (ushort*)w3, r, next, nextBytes);
}
