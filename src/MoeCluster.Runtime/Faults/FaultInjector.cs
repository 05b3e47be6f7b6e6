namespace MoeCluster.Runtime.Faults;

/// <summary>Where an injected fault strikes: the actors on the token path.</summary>
public enum FaultSite { Gateway, Attention, Router, ExpertHost, Expert }

/// <summary>
/// Test-only switch that makes an actor on the token path throw, as an out-of-memory error or a bug would, so tests can
/// prove the failure is answered at once and recovered from. Production nodes never have one
/// (<see cref="RuntimeOptions.Faults"/> is null); in-process test clusters share one instance and arm it while running.
/// </summary>
public sealed class FaultInjector
{
    sealed class Arming(FaultSite site, string? target, int times)
    {
        public FaultSite Site { get; } = site;
        public string? Target { get; } = target;
        public int Remaining = times;
    }

    readonly List<Arming> armed = new();
    int fired;

    /// <summary>The next <paramref name="times"/> passes through <paramref name="site"/> (of the actor whose id is
    /// <paramref name="target"/>, e.g. "L0.E2" or "router-1"; any when null) throw.</summary>
    public void Arm(FaultSite site, int times = 1, string? target = null)
    {
        lock (armed) armed.Add(new Arming(site, target, times));
    }

    public void Disarm()
    {
        lock (armed) armed.Clear();
    }

    /// <summary>How many faults have been thrown so far.</summary>
    public int Fired => Volatile.Read(ref fired);

    /// <summary>Called by actors at the start of their work on a step.</summary>
    public void ThrowIfArmed(FaultSite site, string actor)
    {
        lock (armed)
        {
            var a = armed.FirstOrDefault(a => a.Site == site && a.Remaining > 0 && (a.Target is null || a.Target == actor));
            if (a is null) return;
            a.Remaining--;
            fired++;
        }
        throw new InjectedFaultException($"injected fault in {site} {actor}");
    }
}

public sealed class InjectedFaultException(string message) : Exception(message);
