using MoeCluster.Bench.Measurement;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

public enum WorkloadKind { Prefill, Decode }

/// <summary>One measured workload: median step time, and the FLOPs and bytes one step needs (see <see cref="ModelCost"/>).</summary>
public sealed record WorkloadResult(WorkloadKind Kind, ScalarType DType, int Sequences, int TokensPerStep, Timings Step, double StepFlops, double StepBytes)
{
    public string Name => Kind == WorkloadKind.Prefill
        ? $"prefill {Sequences}×{BenchSmall.PromptTokens}"
        : $"decode batch {Sequences}";

    public double StepMs => Step.Median * 1e3;
    public double TokensPerSecond => TokensPerStep / Step.Median;
    public double Gflops => StepFlops / Step.Median / 1e9;
    public double GBs => StepBytes / Step.Median / 1e9;

    public double ComputeFraction(HardwareCeilings h) => Gflops / h.MatmulGflops(DType);
    public double BandwidthFraction(HardwareCeilings h) => GBs / h.BandwidthGBs;

    /// <summary>Time the step would take at the better-bound ceiling (roofline) ÷ measured time.</summary>
    public double RooflineFraction(HardwareCeilings h) =>
        Math.Max(StepFlops / (h.MatmulGflops(DType) * 1e9), StepBytes / (h.BandwidthGBs * 1e9)) / Step.Median;
}

/// <summary>Continuous batching through <c>LocalEngine.Run</c>, one run end to end (scheduling, sampling included).</summary>
public sealed record EngineResult(ScalarType DType, int Requests, int PromptTokens, int MaxTokens, int GeneratedTokens, double Seconds)
{
    public double GeneratedPerSecond => GeneratedTokens / Seconds;
    public double AllTokensPerSecond => (GeneratedTokens + (double)Requests * PromptTokens) / Seconds;
}
