namespace MoeCluster.Placement.Tests;

public class ReplicaSplitterTests
{
    [Fact]
    public void Tokens_are_split_into_contiguous_ranges_with_the_remainder_on_the_first_replicas()
    {
        var shares = ReplicaSplitter.Split(10, ["node-a", "node-b", "node-c"]);

        Assert.Equal(
            [new ReplicaShare(0, "node-a", 0, 4), new ReplicaShare(1, "node-b", 4, 3), new ReplicaShare(2, "node-c", 7, 3)],
            shares);
    }

    [Fact]
    public void Fewer_tokens_than_replicas_leaves_the_last_replicas_empty() =>
        Assert.Equal([1, 1, 0], ReplicaSplitter.Split(2, ["node-a", "node-b", "node-c"]).Select(s => s.Count));

    [Fact]
    public void Splits_cover_every_token_once_evenly_and_agree_with_ReplicaOf()
    {
        var random = new Random(11);
        for (var trial = 0; trial < 200; trial++)
        {
            var tokens = random.Next(0, 300);
            var replicas = Enumerable.Range(0, random.Next(1, 7)).Select(Cluster.Name).ToList();

            var shares = ReplicaSplitter.Split(tokens, replicas);

            Assert.Equal(tokens, shares.Sum(s => s.Count));
            Assert.True(shares.Max(s => s.Count) - shares.Min(s => s.Count) <= 1);
            for (var i = 0; i < shares.Count; i++)
            {
                Assert.Equal(i == 0 ? 0 : shares[i - 1].Start + shares[i - 1].Count, shares[i].Start);
                for (var token = shares[i].Start; token < shares[i].Start + shares[i].Count; token++)
                    Assert.Equal(i, ReplicaSplitter.ReplicaOf(token, tokens, replicas.Count));
            }
        }
    }

    [Fact]
    public void An_empty_replica_list_is_rejected() =>
        Assert.Throws<ArgumentException>(() => ReplicaSplitter.Split(3, []));
}
