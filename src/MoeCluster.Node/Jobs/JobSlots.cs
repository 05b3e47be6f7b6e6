namespace MoeCluster.Node.Jobs;

/// <summary>The share of this gateway's batch slots (KV-cache sequences) that job lines may hold at once, across every
/// job running here; interactive requests keep the rest. <c>max(1, floor(share × max batch size))</c>.</summary>
public sealed class JobSlots
{
    readonly SemaphoreSlim semaphore;

    public int Slots { get; }

    public JobSlots(double share, int maxBatchSize)
    {
        if (share is <= 0 or > 1) throw new ArgumentException($"--job-batch-share: {share} is not in (0, 1]");
        Slots = Math.Max(1, (int)Math.Floor(share * maxBatchSize));
        semaphore = new SemaphoreSlim(Slots, Slots);
    }

    public int InUse => Slots - semaphore.CurrentCount;

    public Task WaitAsync(CancellationToken cancellation) => semaphore.WaitAsync(cancellation);

    public void Release() => semaphore.Release();
}
