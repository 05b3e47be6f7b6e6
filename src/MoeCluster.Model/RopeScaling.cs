namespace MoeCluster.Model;

/// <summary>
/// config.json's <c>rope_scaling</c> (transformers 5 names it <c>rope_parameters</c>): how rotary frequencies are
/// stretched for contexts past the trained length. <c>default</c> leaves them as 1/θ^(2i/d); <c>yarn</c> — what Qwen3
/// documents past 32k — blends interpolated and extrapolated frequencies over a linear ramp between the dimensions
/// that turn <c>beta_fast</c> and <c>beta_slow</c> times within the original context, and scales cos/sin by an attention
/// factor, exactly as transformers' modeling_rope_utils._compute_yarn_parameters does.
/// </summary>
public sealed record RopeScaling
{
    public static readonly string[] SupportedTypes = ["default", "yarn"];

    public string Type { get; init; } = "default";
    /// <summary>yarn: how many times the original context the model should reach.</summary>
    public double? Factor { get; init; }
    public double? AttentionFactor { get; init; }
    public double? BetaFast { get; init; }
    public double? BetaSlow { get; init; }
    public double? Mscale { get; init; }
    public double? MscaleAllDim { get; init; }
    public int? OriginalMaxPositionEmbeddings { get; init; }
    public bool Truncate { get; init; } = true;

    /// <summary>Inverse frequencies (one per pair of dimensions, Dh/2 of them) and the factor cos and sin are scaled by.</summary>
    public (double[] InverseFrequencies, double AttentionScaling) Compute(int headDim, double theta, int maxPositionEmbeddings)
    {
        int half = headDim / 2;
        var extrapolation = new double[half];
        for (int i = 0; i < half; i++) extrapolation[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (Type == "default") return (extrapolation, 1.0);

        int original = OriginalMaxPositionEmbeddings ?? maxPositionEmbeddings;
        double factor = Factor ?? (double)maxPositionEmbeddings / original;
        static double GetMscale(double scale, double mscale = 1) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;
        double attention = AttentionFactor
            ?? (Mscale is double m && m != 0 && MscaleAllDim is double all && all != 0 ? GetMscale(factor, m) / GetMscale(factor, all) : GetMscale(factor));
        double betaFast = BetaFast is double bf && bf != 0 ? bf : 32, betaSlow = BetaSlow is double bs && bs != 0 ? bs : 1;
        double CorrectionDim(double rotations) => headDim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = CorrectionDim(betaFast), high = CorrectionDim(betaSlow);
        if (Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
        low = Math.Max(low, 0);
        high = Math.Min(high, headDim - 1);
        if (low == high) high += 0.001; // transformers: prevent a zero-width ramp
        var inverse = new double[half];
        for (int i = 0; i < half; i++)
        {
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double extrapolationWeight = 1 - ramp;
            inverse[i] = extrapolation[i] / factor * (1 - extrapolationWeight) + extrapolation[i] * extrapolationWeight;
        }
        return (inverse, attention);
    }
}
