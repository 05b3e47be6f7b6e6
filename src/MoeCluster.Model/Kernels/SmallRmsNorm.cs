using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>
/// RMSNorm of a few rows in one managed pass. The TorchSharp form (<see cref="Layers.RmsNorm"/>: cast, pow, mean, add,
/// rsqrt, multiply, cast, multiply) is eight ops, each a dispatch of several microseconds, for what is a few hundred
/// multiply-adds per decode token; a decode step runs it twice per layer (and Qwen3/OLMoE twice more on q and k).
/// Same arithmetic as the TorchSharp path, each step rounded as libtorch rounds it: the mean of squares in float32
/// (summed in another order), 1/√(mean + eps), the product, the cast to the compute dtype, the weight's product in it.
/// Legend: N normalised elements (the weight's length), W elements of one leading row (a multiple of N).
/// </summary>
public static unsafe class SmallRmsNorm
{
    /// <summary>Off: every norm goes to libtorch (MOECLUSTER_SMALL_NORM=0 for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_SMALL_NORM") != "0";

    /// <summary>Most elements one call takes (a decode batch of 32 × 2,048 hidden). The kernel runs on the calling
    /// thread; beyond this, in prefill steps, the dispatch cost it saves is small beside the work, which libtorch's ops
    /// spread over the cores.</summary>
    public const long MaxElements = 1 << 16;

    static readonly ThreadSwitch onThisThread = new();

    /// <summary>Sends this thread's norms to libtorch until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread() => onThisThread.Off();

    /// <summary>Whether <see cref="Run"/> takes x [T, …, N] with this weight [N]: CPU, float32 or bfloat16 throughout, few
    /// elements, no gradient wanted.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        Enabled && !onThisThread.IsOff && x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU
        && (x.dtype == ScalarType.Float32 || x.dtype == ScalarType.BFloat16) && weight.dtype == x.dtype
        && x.dim() >= 1 && weight.dim() == 1 && x.size(-1) == weight.size(0) && weight.is_contiguous()
        && x.NumberOfElements <= MaxElements && x.NumberOfElements > 0
        && !(is_grad_enabled() && (x.requires_grad || weight.requires_grad));

    /// <summary>weight · (x / √(mean(x²) + eps)) over the last dimension, in x's dtype and shape (contiguous).</summary>
    public static Tensor Run(Tensor x, Tensor weight, double eps, KernelPath path = KernelPath.Vector512)
    {
        int N = (int)weight.size(0), T = (int)x.size(0), W = (int)(x.NumberOfElements / T);
        bool bf16 = x.dtype == ScalarType.BFloat16;
        using var rows = PackedRows.Of(x, T, W, out long stride);
        var output = empty(TensorMemory.Sizes(x), x.dtype, CPU);
        byte* input = PackedRows.Data(rows ?? x), w = PackedRows.Data(weight), y = PackedRows.Data(output);
        int es = bf16 ? 2 : 4;
        bool vector = path == KernelPath.Vector512 && Vector512.IsHardwareAccelerated && N % 16 == 0;
        for (int t = 0; t < T; t++)
            for (int g = 0; g < W; g += N)
            {
                byte* from = input + (t * stride + g) * es, to = y + ((long)t * W + g) * es;
                if (vector) Group(from, w, to, N, (float)eps, bf16);
                else GroupScalar(from, w, to, N, (float)eps, bf16);
            }
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Group(byte* x, byte* w, byte* y, int N, float eps, bool bf16)
    {
        var squares = Vector512<float>.Zero;
        for (int i = 0; i < N; i += 16)
        {
            var v = Elements.Load(x, i, bf16);
            squares = Vector512.FusedMultiplyAdd(v, v, squares);
        }
        var inverse = Vector512.Create(1f / MathF.Sqrt(Vector512.Sum(squares) / N + eps));
        for (int i = 0; i < N; i += 16)
        {
            var h = Elements.Load(x, i, bf16) * inverse;
            if (!bf16) { (Elements.Load(w, i, false) * h).Store((float*)y + i); continue; }
            BFloat16Bits.Store(BFloat16Bits.Round(Elements.Load(w, i, true) * BFloat16Bits.Round(h)), (ushort*)y + i);
        }
    }

    static void GroupScalar(byte* x, byte* w, byte* y, int N, float eps, bool bf16)
    {
        float squares = 0;
        for (int i = 0; i < N; i++) { float v = Elements.Read(x, i, bf16); squares += v * v; }
        float inverse = 1f / MathF.Sqrt(squares / N + eps);
        for (int i = 0; i < N; i++)
        {
            float h = Elements.Read(x, i, bf16) * inverse;
            if (bf16) ((ushort*)y)[i] = BFloat16Bits.Round(Elements.Read(w, i, true) * BFloat16Bits.Rounded(h));
            else ((float*)y)[i] = Elements.Read(w, i, false) * h;
        }
    }
}
