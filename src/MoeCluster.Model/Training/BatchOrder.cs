namespace MoeCluster.Model.Training;

/// <summary>Batches of window indices: every window once per epoch, in a seeded shuffled order.</summary>
public sealed class BatchOrder(int windows, int batchSize, int seed)
{
    readonly Random random = new(seed);
    int[] order = [];
    int position;

    public int[] Next()
    {
        if (position + batchSize > order.Length)
        {
            order = Enumerable.Range(0, windows).ToArray();
            random.Shuffle(order);
            position = 0;
        }
        var batch = order.AsSpan(position, batchSize).ToArray();
        position += batchSize;
        return batch;
    }
}
