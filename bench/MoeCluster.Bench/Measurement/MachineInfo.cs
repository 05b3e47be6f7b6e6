namespace MoeCluster.Bench.Measurement;

/// <summary>What the figures were measured on, read from /proc (Linux): CPU model, cores, the SIMD features that
/// decide float32/bfloat16 matmul speed, and the load average at start (the machine is shared).</summary>
public sealed record MachineInfo(string CpuModel, int Cores, IReadOnlyList<string> SimdFlags, string LoadAverage)
{
    static readonly string[] InterestingFlags = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"];

    public bool HasAvx512Bf16 => SimdFlags.Contains("avx512_bf16");
    public bool HasAmxBf16 => SimdFlags.Contains("amx_bf16");

    public static MachineInfo Read()
    {
        var cpuinfo = File.Exists("/proc/cpuinfo") ? File.ReadAllLines("/proc/cpuinfo") : [];
        string Field(string name) => cpuinfo.FirstOrDefault(l => l.StartsWith(name))?.Split(':', 2)[1].Trim() ?? "unknown";
        var flags = Field("flags").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var mhz = double.TryParse(Field("cpu MHz"), System.Globalization.CultureInfo.InvariantCulture, out var f) ? $" @ {f / 1000:0.00} GHz" : "";
        var load = File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
        return new MachineInfo(Field("model name") + mhz, Environment.ProcessorCount,
            InterestingFlags.Where(flags.Contains).ToArray(), load);
    }

    public static string CurrentLoad() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
}
