using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>Compute dtype and device for a module's parameters (float32 is the CPU default; bfloat16 halves memory).</summary>
public sealed record ModuleOptions(ScalarType DType, Device Device)
{
    public static ModuleOptions Cpu32 { get; } = new(ScalarType.Float32, CPU);

    /// <summary>Parses the user-facing settings: dtype "float32"|"bfloat16"|"float16", device "cpu"|"cuda"|"cuda:N".</summary>
    public static ModuleOptions Parse(string dtype, string device)
    {
        var d = dtype.ToLowerInvariant() switch
        {
            "float32" or "fp32" or "f32" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" or "f16" => ScalarType.Float16,
            _ => throw new ArgumentException($"dtype '{dtype}' is not supported; supported: float32, bfloat16, float16"),
        };
        if (device != "cpu" && !System.Text.RegularExpressions.Regex.IsMatch(device, @"^cuda(:\d+)?$"))
            throw new ArgumentException($"device '{device}' is not supported; supported: cpu, cuda, cuda:N");
        if (device.StartsWith("cuda") && !TorchSharp.torch.cuda.is_available())
            throw new ArgumentException($"device '{device}' requested but CUDA is not available in this build (it uses libtorch-cpu; see docs/DEPLOY.md for the CUDA image)");
        return new ModuleOptions(d, new Device(device));
    }
}
