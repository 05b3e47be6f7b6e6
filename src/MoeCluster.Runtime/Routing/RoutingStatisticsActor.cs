using Akka.Actor;
using Akka.Event;
using MoeCluster.Model;
using MoeCluster.Placement;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Metrics;

namespace MoeCluster.Runtime.Routing;

/// <summary>
/// A gateway's routing statistics (<see cref="RoutingStatistics"/>, a load window of <c>windowSteps</c> steps): the
/// routers report each step's choices (<see cref="LayerRouted"/>), the gateway reports the step finished with the
/// sequence of every row (<see cref="StepFinished"/>), and the step's layers are recorded together — so co-activation
/// across layers and fluctuation along a sequence come from finished steps only. Every few seconds the window is
/// exported as Prometheus gauges (per layer, and per expert pair while the series stay under
/// <see cref="MoeMetrics.ExpertSeriesLimit"/>); <see cref="GetRoutingStatistics"/> answers the whole window.
/// A child of the gateway at <c>/user/gateway/routing-statistics</c>.
/// </summary>
public sealed class RoutingStatisticsActor : ReceiveActor, IWithTimers
{
    public const string Name = "routing-statistics";

    sealed record Export;

    readonly ModelConfig config;
    readonly ExpertDirectory directory;
    readonly RoutingStatistics statistics;
    readonly Dictionary<long, List<LayerRouting>> pending = new();
    /// <summary>Request id → the number its rows are recorded under (only sequences of the last step).</summary>
    Dictionary<string, long> sequences = new();
    long nextSequence;
    /// <summary>Expert → node, rebuilt when the directory's placement is replaced.</summary>
    (object? Source, Dictionary<ExpertId, string> Nodes) nodes = (null, new());
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Steps kept per layer before an unfinished step's routings are dropped (a retried step never finishes).</summary>
    const int PendingSteps = 8;

    public static Props Props(ModelConfig config, ExpertDirectory directory, int windowSteps) =>
        Akka.Actor.Props.Create(() => new RoutingStatisticsActor(config, directory, windowSteps));

    public RoutingStatisticsActor(ModelConfig config, ExpertDirectory directory, int windowSteps)
    {
        this.config = config;
        this.directory = directory;
        statistics = new RoutingStatistics(config.MoeLayers.ToList(), config.NumExperts, config.TopK, windowSteps);
        Receive<LayerRouted>(m =>
        {
            if (!pending.TryGetValue(m.StepId, out var layers)) pending[m.StepId] = layers = new List<LayerRouting>();
            layers.Add(m.Routing);
            foreach (var old in pending.Keys.Where(k => k < m.StepId - PendingSteps).ToList()) pending.Remove(old);
        });
        Receive<StepFinished>(Record);
        Receive<Export>(_ => Publish(statistics.Snapshot()));
        Receive<GetRoutingStatistics>(_ => Sender.Tell(statistics.Snapshot("gateway " + Context.Parent.Path)));
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("export", new Export(), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2));

    void Record(StepFinished m)
    {
        if (!pending.Remove(m.StepId, out var layers)) return;
        var rows = new long[m.Layout.TokenCount];
        var next = new Dictionary<string, long>();
        int row = 0;
        for (int s = 0; s < m.Layout.Segments.Count; s++)
        {
            var request = m.SegmentRequests[s];
            if (!next.TryGetValue(request, out var id))
                next[request] = id = sequences.TryGetValue(request, out var known) ? known : ++nextSequence;
            for (int t = 0; t < m.Layout.Segments[s].Length; t++) rows[row++] = id;
        }
        sequences = next;
        try { statistics.RecordStep(layers, rows, NodeOf); }
        catch (ArgumentException e) { Context.GetLogger().Warning("routing statistics of step {0} not recorded: {1}", m.StepId, e.Message); }
    }

    string? NodeOf(ExpertId expert)
    {
        var placement = directory.Placement;
        if (!ReferenceEquals(nodes.Source, placement))
            nodes = (placement, placement.Where(p => ExpertId.TryParse(p.Key, out _)).ToDictionary(p => ExpertId.Parse(p.Key), p => p.Value));
        return nodes.Nodes.GetValueOrDefault(expert);
    }

    void Publish(RoutingSnapshot snapshot)
    {
        int pairSeries = snapshot.Layers.Count * config.NumExperts * (config.NumExperts - 1) / 2;
        int nextSeries = Math.Max(0, snapshot.Layers.Count - 1) * config.NumExperts * config.NumExperts;
        foreach (var l in snapshot.Layers)
        {
            if (l.Tokens == 0) continue;
            var layer = l.Layer.ToString();
            MoeMetrics.RoutingEntropy.WithLabels(layer).Set(l.NormalisedEntropy);
            MoeMetrics.RoutingFluctuation.WithLabels(layer).Set(l.Fluctuation);
            if (l.NodesPerToken is { } n) MoeMetrics.RoutingNodesPerToken.WithLabels(layer).Set(n);
            if (l.ColocatedPairShare is { } c) MoeMetrics.CoactivationColocatedShare.WithLabels(layer).Set(c);
            if (pairSeries <= MoeMetrics.ExpertSeriesLimit)
                for (int a = 0; a < config.NumExperts; a++)
                    for (int b = a + 1; b < config.NumExperts; b++)
                        MoeMetrics.CoactivationTokens.WithLabels(layer, a.ToString(), b.ToString()).Set(l.Coactivation[a][b]);
            if (l.NextLayerCoactivation is { } cross && nextSeries <= MoeMetrics.ExpertSeriesLimit)
                for (int a = 0; a < config.NumExperts; a++)
                    for (int b = 0; b < config.NumExperts; b++)
                        MoeMetrics.CoactivationNextLayerTokens.WithLabels(layer, a.ToString(), b.ToString()).Set(cross[a][b]);
        }
    }
}
