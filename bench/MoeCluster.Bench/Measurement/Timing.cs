using System.Diagnostics;

namespace MoeCluster.Bench.Measurement;

/// <summary>Wall-clock seconds of repeated runs of one body, after warm-up runs that are thrown away.</summary>
public sealed record Timings(IReadOnlyList<double> Seconds)
{
    public double Median => MedianOf(Seconds);

    /// <summary>The middle value (the mean of the two middle ones for an even count); every benchmark's median.</summary>
    public static double MedianOf(IEnumerable<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public double Best => Seconds.Min();

    /// <summary>Times <paramref name="body"/> <paramref name="runs"/> times after <paramref name="warmup"/> untimed runs.
    /// The run index is passed so a body can advance state (e.g. the decode position).</summary>
    public static Timings Measure(int warmup, int runs, Action<int> body)
    {
        for (int i = 0; i < warmup; i++) body(i);
        var seconds = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            body(warmup + i);
            seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return new Timings(seconds);
    }
}
