using System.Diagnostics;
using MoeCluster.Bench.Measurement;

namespace MoeCluster.Bench.ModelCore;

/// <summary>The stopwatch of the step profiles: milliseconds per named part within a step, and the per-step totals of
/// the steps kept, from which each part's median is read. One per profile run.</summary>
sealed class StepPartTimes(IReadOnlyList<string> names)
{
    readonly Dictionary<string, List<double>> kept = names.ToDictionary(p => p, _ => new List<double>());
    readonly Dictionary<string, double> step = names.ToDictionary(p => p, _ => 0.0);

    /// <summary>Runs <paramref name="body"/> and adds its time to <paramref name="part"/> of the current step.</summary>
    public T Time<T>(string part, Func<T> body)
    {
        long t0 = Stopwatch.GetTimestamp();
        var result = body();
        step[part] += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        return result;
    }

    /// <summary>Takes <paramref name="ms"/> off a part of the current step (a part timed inside another).</summary>
    public void Subtract(string part, double ms) => step[part] -= ms;

    public double this[string part] => step[part];

    /// <summary>Ends the current step, keeping its totals unless it was the untimed warm-up.</summary>
    public void EndStep(bool keep)
    {
        foreach (var part in names)
        {
            if (keep) kept[part].Add(step[part]);
            step[part] = 0;
        }
    }

    public (string Part, double Ms)[] Medians() => names.Select(p => (p, Timings.MedianOf(kept[p]))).ToArray();
}
