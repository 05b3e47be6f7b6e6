using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime;

/// <summary>Node roles. A node may hold any mix; a one-node cluster holds all three.</summary>
public static class NodeRoles
{
    public const string Gateway = "gateway";
    public const string Attention = "attention";
    public const string Expert = "expert";
    public static readonly string[] All = [Gateway, Attention, Expert];

    /// <summary>Expert capacity travels as a role so the shard allocation strategy can read it from cluster state.</summary>
    public const string ExpertSlotsPrefix = "expert-slots-";
}

/// <summary>What one node of the runtime needs to know. Bound from the command line, a config file or environment.</summary>
public sealed record RuntimeOptions
{
    /// <summary>Hugging Face checkpoint directory; every node reads the weights it hosts from here.</summary>
    public required string ModelDirectory { get; init; }
    public IReadOnlyList<string> Roles { get; init; } = NodeRoles.All;
    /// <summary>"cpu" or "cuda:N".</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>"float32" (default on CPU) or "bfloat16".</summary>
    public string DType { get; init; } = "float32";
    /// <summary>How many expert replicas this node may hold; 0 = unlimited.</summary>
    public int ExpertSlots { get; init; }
    public BatchingOptions Batching { get; init; } = new();
    /// <summary>After this long without an expert node's answer, the router re-sends the missing experts' tokens
    /// through the shard region (which reaches the expert wherever it lives now).</summary>
    public TimeSpan ExpertTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A step not finished in this time is retried from its first layer (KV writes are idempotent).</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public int MaxStepAttempts { get; init; } = 3;
    /// <summary>Expert nodes that must be up before the gateway starts the experts, so the first expert node does not
    /// receive every expert only to hand most of them off again. (Not Akka's min-nr-of-members: the shard coordinator
    /// would wait for that many regions again after a node died, and never re-home its experts.)</summary>
    public int MinExpertNodes { get; init; } = 1;
    /// <summary>TorchSharp intra-op threads; 0 = leave libtorch's default.</summary>
    public int ComputeThreads { get; init; }
    /// <summary>Threads of the dispatcher the token path's actors run on (<see cref="Hosting.TokenPathDispatcher"/>);
    /// 0 = the .NET thread pool, as Akka's default dispatcher (how the runtime ran before; for comparison).</summary>
    public int TokenPathThreads { get; init; } = Hosting.TokenPathDispatcher.DefaultThreads;
    /// <summary>Longest a caller of the gateway waits for a request to end (queued and running together); past it the
    /// request is cancelled and ends with an error, so no caller waits forever whatever goes wrong.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Test-only fault injection (null in production).</summary>
    public Faults.FaultInjector? Faults { get; init; }
    /// <summary>How expert primaries are placed: "even" or "coactivation" (with <see cref="RoutingProfile"/>);
    /// docs/ARCHITECTURE.md, "Co-activation placement".</summary>
    public string Placement { get; init; } = Experts.PlacementStrategy.Even;
    /// <summary>Routing statistics JSON (<c>moecluster routing-stats --output</c>) the co-activation placement reads.</summary>
    public string? RoutingProfile { get; init; }
    /// <summary>Co-activation placement: how far above an even share of a layer's tokens (and of the experts) a node
    /// may go; larger values group more and spread each layer over fewer nodes.</summary>
    public double PlacementLoadSlack { get; init; } = 0.25;
    /// <summary>Routed experts held in int8: "none", "cold" (the least-loaded <see cref="Int8Budget"/> of each layer) or
    /// "all"; never super experts (docs/ARCHITECTURE.md, "Int8 experts"). Needs <see cref="RoutingProfile"/>.</summary>
    public string Int8Experts { get; init; } = "none";
    public double Int8Budget { get; init; } = 0.6;
    /// <summary>An expert node keeps at most this many experts in memory (0 = all); the others load on demand
    /// (docs/ARCHITECTURE.md, "Experts that do not fit").</summary>
    public int ResidentExperts { get; init; }
    /// <summary>Routers prefetch the experts the next layer's gate picks for the current hidden state (Pre-gated MoE).</summary>
    public bool ExpertLookahead { get; init; }
    /// <summary>Gateways keep routing statistics (entropy, co-activation, fluctuation) over a window of
    /// <see cref="RoutingWindowSteps"/> steps and export them (docs/ARCHITECTURE.md, "Routing statistics").</summary>
    public bool RoutingStatistics { get; init; } = true;
    public int RoutingWindowSteps { get; init; } = 1000;
    /// <summary>Replicas of hot experts on other expert nodes (docs/ARCHITECTURE.md, "Hot experts").</summary>
    public Replication.HotExpertOptions Replication { get; init; } = new();
}
