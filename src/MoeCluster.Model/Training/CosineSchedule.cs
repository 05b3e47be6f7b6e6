namespace MoeCluster.Model.Training;

/// <summary>Learning rate per step: linear warm-up from 0 to the peak, then a cosine down to <c>MinFraction</c> of the
/// peak at the last step (as in nanoGPT / the Chinchilla recipe).</summary>
public sealed record CosineSchedule(double Peak, int WarmupSteps, int TotalSteps, double MinFraction = 0.1)
{
    /// <summary>Rate for 1-based <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (WarmupSteps > 0 && step <= WarmupSteps) return Peak * step / WarmupSteps;
        int decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        double min = Peak * MinFraction;
        return min + 0.5 * (Peak - min) * (1 + Math.Cos(Math.PI * progress));
    }
}
