using Prometheus;

namespace MoeCluster.Runtime.Metrics;

/// <summary>Every Prometheus series the runtime exports (names follow vLLM's where the meaning is the same, with the
/// moecluster_ prefix; units in names; counters end in _total). docs/METRICS.md lists each one.
/// Per-expert series are bounded: see <see cref="ExpertSeriesLimit"/>.</summary>
public static class MoeMetrics
{
    static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    static readonly double[] SizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

    public static readonly Gauge RequestsWaiting = Prom.CreateGauge("moecluster_requests_waiting", "Requests queued at the gateway, not yet running.");
    public static readonly Gauge RequestsRunning = Prom.CreateGauge("moecluster_requests_running", "Sequences in the running batch (holding a KV-cache slot).");
    public static readonly Counter RequestsRejected = Prom.CreateCounter("moecluster_requests_rejected_total", "Requests refused by the gateway.", "reason");
    public static readonly Counter RequestsFinished = Prom.CreateCounter("moecluster_request_success_total", "Requests finished, by reason (stop, length, cancelled, error).", "finished_reason");
    public static readonly Counter PromptTokens = Prom.CreateCounter("moecluster_prompt_tokens_total", "Prompt tokens prefilled.");
    public static readonly Counter GenerationTokens = Prom.CreateCounter("moecluster_generation_tokens_total", "Tokens generated.");
    public static readonly Counter PrefixCacheQueries = Prom.CreateCounter("moecluster_prefix_cache_queries_tokens_total", "Prompt tokens looked up in the prefix cache (vLLM's prefix_cache_queries).");
    public static readonly Counter PrefixCacheHits = Prom.CreateCounter("moecluster_prefix_cache_hits_tokens_total", "Prompt tokens found in the prefix cache and not prefilled again (vLLM's prefix_cache_hits); hit rate = hits / queries.");
    public static readonly Histogram StepTokens = Prom.CreateHistogram("moecluster_step_tokens", "Tokens in one batched step (batch size in tokens).", new HistogramConfiguration { Buckets = SizeBuckets });
    public static readonly Histogram StepSequences = Prom.CreateHistogram("moecluster_step_sequences", "Sequences in one batched step.", new HistogramConfiguration { Buckets = SizeBuckets });
    public static readonly Histogram StepSeconds = Prom.CreateHistogram("moecluster_step_duration_seconds", "Wall time of one batched step through every layer.", new HistogramConfiguration { Buckets = LatencyBuckets });
    public static readonly Counter StepRetries = Prom.CreateCounter("moecluster_step_retries_total", "Steps retried after a timeout or failure inside the step.", "reason");
    public static readonly Histogram TimeToFirstToken = Prom.CreateHistogram("moecluster_time_to_first_token_seconds", "From request arrival to its first generated token.", new HistogramConfiguration { Buckets = LatencyBuckets });
    public static readonly Histogram InterTokenLatency = Prom.CreateHistogram("moecluster_inter_token_latency_seconds", "Between consecutive generated tokens of one request.", new HistogramConfiguration { Buckets = LatencyBuckets });
    public static readonly Histogram RequestLatency = Prom.CreateHistogram("moecluster_e2e_request_latency_seconds", "From request arrival to its end.", new HistogramConfiguration { Buckets = LatencyBuckets });
    public static readonly Histogram QueueTime = Prom.CreateHistogram("moecluster_request_queue_time_seconds", "Time a request waited for a KV-cache slot.", new HistogramConfiguration { Buckets = LatencyBuckets });
    public static readonly Gauge KvCacheBytes = Prom.CreateGauge("moecluster_kv_cache_bytes_in_use", "Bytes of KV cache holding live sequence positions (all layers).");
    public static readonly Gauge KvCacheCapacityBytes = Prom.CreateGauge("moecluster_kv_cache_capacity_bytes", "Bytes of KV cache allocated (all layers, all slots).");

    /// <summary>Per-expert token counts produce layers × experts series (DeepSeek-V3: 58 × 256 = 14,848), so they are
    /// exported only while layers × experts ≤ this limit; above it only the per-layer series are kept.</summary>
    public static int ExpertSeriesLimit { get; set; } = 2048;
    public static readonly Counter ExpertTokens = Prom.CreateCounter("moecluster_expert_routed_tokens_total", "Tokens routed to each expert (bounded: see docs/METRICS.md).", "layer", "expert", "node");
    public static readonly Counter LayerTokens = Prom.CreateCounter("moecluster_layer_routed_tokens_total", "Token-expert assignments made by each MoE layer's router.", "layer");
    public static readonly Gauge LayerBalancedness = Prom.CreateGauge("moecluster_layer_balancedness", "Mean ÷ max tokens per expert over the router's window (1 = perfectly balanced).", "layer");
    public static readonly Gauge LayerHottestShare = Prom.CreateGauge("moecluster_layer_hottest_expert_share", "Share of a layer's tokens that went to its busiest expert over the window.", "layer");
    public static readonly Gauge RoutingEntropy = Prom.CreateGauge("moecluster_routing_entropy", "Mean entropy of a token's gate distribution over the layer's experts, divided by ln E (1 = uniform, 0 = certain), over the routing window.", "layer");
    public static readonly Gauge RoutingFluctuation = Prom.CreateGauge("moecluster_routing_fluctuation", "Mean share of a token's top-k experts that differ from the previous token of its sequence, over the routing window.", "layer");
    public static readonly Gauge RoutingNodesPerToken = Prom.CreateGauge("moecluster_routing_nodes_per_token", "Mean number of distinct nodes holding a token's top-k experts (primaries), over the routing window.", "layer");
    public static readonly Gauge CoactivationColocatedShare = Prom.CreateGauge("moecluster_expert_coactivation_colocated_share", "Share of co-activated expert pairs (two experts chosen by one token) whose experts were on one node, over the routing window.", "layer");
    public static readonly Gauge CoactivationTokens = Prom.CreateGauge("moecluster_expert_coactivation_tokens", "Tokens in the routing window that chose both `expert` and `other` (expert < other) at `layer` (bounded: see docs/METRICS.md).", "layer", "expert", "other");
    public static readonly Gauge CoactivationNextLayerTokens = Prom.CreateGauge("moecluster_expert_coactivation_next_layer_tokens", "Tokens in the routing window that chose `expert` at `layer` and `next` at the next MoE layer (bounded: see docs/METRICS.md).", "layer", "expert", "next");
    public static readonly Gauge ExpertMemoryBytes = Prom.CreateGauge("moecluster_expert_memory_bytes", "Bytes of routed-expert weights loaded on this node, by precision (float = the compute dtype, int8).", "precision");
    public static readonly Gauge ExpertsResident = Prom.CreateGauge("moecluster_experts_resident", "Experts in memory on this node when it keeps a resident set (--resident-experts).");
    public static readonly Counter ExpertResidency = Prom.CreateCounter("moecluster_expert_residency_total", "Expert computations on a node with a resident set, by whether the weights were in memory (hit), still being prefetched (late) or loaded on demand (miss).", "result");
    public static readonly Counter ExpertPrefetches = Prom.CreateCounter("moecluster_expert_prefetches_total", "Look-ahead prefetches of experts: started, used (computed with before release), unused (released unused).", "outcome");
    public static readonly Counter ExpertEvictions = Prom.CreateCounter("moecluster_expert_evictions_total", "Experts released from a node's resident set to make room.");
    public static readonly Gauge ExpertReplicas = Prom.CreateGauge("moecluster_expert_replicas", "Redundant replicas of hot experts loaded, by layer (primaries not counted), as the replication coordinator last set them.", "layer");
    public static readonly Counter ReplicationChanges = Prom.CreateCounter("moecluster_replication_changes_total", "Redundant replicas added or retired by the replication coordinator, by kind (add, retire).", "kind");
    public static readonly Counter ReplicaTokens = Prom.CreateCounter("moecluster_replica_computed_tokens_total", "Token rows computed by redundant replicas on this node (node = this node's address).", "node");
    public static readonly Gauge ExpertsHosted = Prom.CreateGauge("moecluster_experts_hosted", "Expert actors (primaries and replicas) with their weights loaded on this node.");
    public static readonly Gauge ExpertsLoading = Prom.CreateGauge("moecluster_experts_loading", "Expert actors on this node still reading their weights (the node is not ready while any is).");
    public static readonly Gauge ExpertWeightBytes = Prom.CreateGauge("moecluster_expert_weights_resident_bytes", "Bytes of expert weights resident on this node.");
    public static readonly Histogram ExpertComputeSeconds = Prom.CreateHistogram("moecluster_expert_compute_duration_seconds", "Time one expert took to compute the rows of one request on this node.", new HistogramConfiguration { Buckets = LatencyBuckets });
    /// <summary>Rows computed per expert; bounded like <see cref="ExpertTokens"/>: above <see cref="ExpertSeriesLimit"/>
    /// layers × experts the expert label is "all".</summary>
    public static readonly Counter ExpertComputedRows = Prom.CreateCounter("moecluster_expert_computed_rows_total", "Token rows computed by the experts on this node.", "layer", "expert");
    public static readonly Counter RemoteMessages = Prom.CreateCounter("moecluster_remote_activation_messages_total", "Tensor messages serialised for other nodes (sent) or read from them (received).", "direction");
    public static readonly Counter ExpertBatches = Prom.CreateCounter("moecluster_expert_dispatches_total", "Per-node expert batches sent by routers.", "node");
    public static readonly Counter BytesBetweenNodes = Prom.CreateCounter("moecluster_remote_activation_bytes_total", "Activation bytes serialised for other nodes.", "direction");
    public static readonly Gauge ClusterMembers = Prom.CreateGauge("moecluster_cluster_members", "Cluster members by role and status.", "role", "status");
    public static readonly Counter PlacementMoves = Prom.CreateCounter("moecluster_placement_moves_total", "Experts moved between nodes (rebalance, join, leave).");
    public static readonly Counter Recoveries = Prom.CreateCounter("moecluster_recoveries_total", "Recoveries after failures, by kind (kv_cache_reprefill, expert_retry).", "kind");

    public static readonly Gauge ExpertHostInFlight = Prom.CreateGauge("moecluster_expert_host_in_flight", "Expert calls this node's expert host is waiting on (calls older than twice the expert timeout are forgotten).");
    public static readonly Counter RejectedFrames = Prom.CreateCounter("moecluster_rejected_frames_total", "Messages from peers refused as malformed or inconsistent, by reason (truncated, oversized, dtype, shape, count, trailing, manifest, inconsistent).", "reason");

    public static void FrameRejected(Serialization.FrameRejection reason) => RejectedFrames.WithLabels(reason.ToString().ToLowerInvariant()).Inc();

    static class Prom
    {
        public static Gauge CreateGauge(string name, string help, params string[] labels) => Prometheus.Metrics.CreateGauge(name, help, labels);
        public static Counter CreateCounter(string name, string help, params string[] labels) => Prometheus.Metrics.CreateCounter(name, help, labels);
        public static Histogram CreateHistogram(string name, string help, HistogramConfiguration c) => Prometheus.Metrics.CreateHistogram(name, help, c);
    }
}
