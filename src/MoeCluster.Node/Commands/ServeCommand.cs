using Microsoft.AspNetCore.Builder;
using System.CommandLine;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Hosting;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster serve`: run one node. Every option can also come from MOECLUSTER_&lt;NAME&gt; or --config FILE.</summary>
public static class ServeCommand
{
    public static readonly Option<string?> Config = new("--config") { Description = "JSON file of settings (keys = option names without dashes)" };
    public static readonly Option<string?> Model = new("--model") { Description = "Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer)" };
    public static readonly Option<string[]> Roles = new("--roles") { Description = "gateway, attention, expert (comma separated); default all", AllowMultipleArgumentsPerToken = true };
    public static readonly Option<string?> Hostname = new("--hostname") { Description = "interface for cluster remoting (default 127.0.0.1)" };
    public static readonly Option<string?> PublicHostname = new("--public-hostname") { Description = "address other nodes use to reach this one" };
    public static readonly Option<int?> Port = new("--port") { Description = $"cluster remoting port (default {NodeDefaults.RemotingPort})" };
    public static readonly Option<string?> HttpHost = new("--http-host") { Description = "interface for HTTP (default 0.0.0.0)" };
    public static readonly Option<int?> HttpPort = new("--http-port") { Description = $"HTTP port: OpenAI API, /healthz, /readyz, /metrics (default {NodeDefaults.HttpPort})" };
    public static readonly Option<string[]> SeedNodes = new("--seed-nodes") { Description = "akka.tcp://moecluster@host:port, comma separated; empty = this node starts a new cluster", AllowMultipleArgumentsPerToken = true };
    public static readonly Option<string?> Device = new("--device") { Description = "cpu (default) or cuda:N" };
    public static readonly Option<string?> DType = new("--dtype") { Description = "float32 (default) or bfloat16" };
    public static readonly Option<string?> WireDType = new("--wire-dtype") { Description = "dtype of activations between nodes: float32 (default, as computed) or bfloat16 (half the bytes per token)" };
    public static readonly Option<int?> ExpertSlots = new("--expert-slots") { Description = "most experts this node may hold (0 = no limit)" };
    public static readonly Option<int?> MaxBatch = new("--max-batch-size") { Description = "sequences decoded together (KV-cache slots), default 32" };
    public static readonly Option<int?> Context = new("--context-length") { Description = "longest prompt + completion, default 512" };
    public static readonly Option<bool?> PrefixCache = new("--prefix-cache") { Description = "reuse the KV cache of prompt prefixes earlier requests computed (default true, as vLLM; --prefix-cache false turns it off)" };
    public static readonly Option<int?> MaxQueue = new("--max-queue") { Description = "requests waiting beyond the batch before 'overloaded', default 256" };
    public static readonly Option<int?> Threads = new("--threads") { Description = "TorchSharp compute threads (default: libtorch's choice)" };
    public static readonly Option<int?> TokenThreads = new("--token-threads") { Description = "threads the token path's actors (gateway, routers, attention, experts) run on; 0 (default) = the .NET thread pool" };
    public static readonly Option<string?> Engine = new("--engine") { Description = "cluster (default) or local (one process, no cluster)" };
    public static readonly Option<string?> DataDir = new("--data-dir") { Description = "directory for the batch-job journal (SQLite), default ./data" };
    public static readonly Option<string?> Journal = new("--journal-connection-string") { Description = "PostgreSQL connection string for the job journal instead of SQLite" };
    public static readonly Option<string?> ApiKeysFile = new("--api-keys-file") { Description = "file with one API key per line (or MOECLUSTER_API_KEYS=k1,k2)" };
    public static readonly Option<string?> TlsCertificate = new("--tls-certificate") { Description = "PKCS#12 file enabling TLS between nodes (password in MOECLUSTER_TLS_CERTIFICATE_PASSWORD)" };
    public static readonly Option<string?> TlsKey = new("--tls-key") { Description = "PEM private key of a PEM --tls-certificate (tls.key beside tls.crt)" };
    public static readonly Option<bool?> TrustedNetwork = new("--trusted-network") { Description = "allow remoting on a non-loopback interface without TLS (only on a network private to the cluster)" };
    public static readonly Option<int?> MinExpertNodes = new("--min-expert-nodes") { Description = "expert nodes that must join before the cluster starts placing experts (default 1)" };
    public static readonly Option<double?> ExpertTimeout = new("--expert-timeout") { Description = "seconds a router waits for an expert node before re-sending through the shard region (default 10)" };
    public static readonly Option<double?> StepTimeout = new("--step-timeout") { Description = "seconds before an unfinished step is retried, and the longest a step waits for the cluster to recover (default 60)" };
    public static readonly Option<double?> RequestTimeout = new("--request-timeout") { Description = "seconds a request may take, queued and running, before it is cancelled with an error (default 600)" };
    public static readonly Option<bool?> Replication = new("--replication") { Description = "replicate hot experts on other expert nodes (coordinator on the gateway role; default off)" };
    public static readonly Option<double?> ReplicationInterval = new("--replication-interval") { Description = "seconds between replication decisions (default 5)" };
    public static readonly Option<string?> Placement = new("--placement") { Description = "even (default) or coactivation: experts chosen together by the same tokens share a node (needs --routing-profile; set it on every expert node)" };
    public static readonly Option<double?> PlacementLoadSlack = new("--placement-load-slack") { Description = "with --placement coactivation: how far above an even share of a layer's tokens a node may go (default 0.25; 1 lets a layer use two of three nodes, 2 one)" };
    public static readonly Option<string?> RoutingProfile = new("--routing-profile") { Description = "routing statistics JSON from `moecluster routing-stats --output`, read by --placement coactivation" };
    public static readonly Option<string?> Int8Experts = new("--int8-experts") { Description = "routed experts held in int8: none (default), cold (the least-loaded --int8-budget of each layer) or all; never super experts; needs --routing-profile" };
    public static readonly Option<double?> Int8Budget = new("--int8-budget") { Description = "with --int8-experts cold: share of each layer's experts in int8 (default 0.6)" };
    public static readonly Option<int?> ResidentExperts = new("--resident-experts") { Description = "experts this node keeps in memory (default 0 = all); the others load from the checkpoint when needed" };
    public static readonly Option<bool?> ExpertLookahead = new("--expert-lookahead") { Description = "routers prefetch the experts the next layer's gate picks one layer early (Pre-gated MoE; for --resident-experts)" };
    public static readonly Option<bool?> RoutingStatistics = new("--routing-statistics") { Description = "keep and export routing statistics: entropy, co-activation, fluctuation (default true)" };
    public static readonly Option<int?> RoutingWindow = new("--routing-window") { Description = "steps in the routing statistics window (default 1000)" };
    public static readonly Option<double?> JobRetention = new("--job-retention-hours") { Description = "hours a finished job and an uploaded file are kept before deletion (default 720 = 30 days)" };
    public static readonly Option<double?> JobBatchShare = new("--job-batch-share") { Description = "share of the batch slots job lines may hold at once, so interactive requests are not starved (default 0.5)" };
    public static readonly Option<int?> MaxUploads = new("--max-concurrent-uploads") { Description = "uploads (/v1/files, /v1/jobs) streamed at once on this node; more get 429 (default 4)" };
    public static readonly Option<double?> DrainGrace = new("--drain-grace") { Description = "seconds a stopping gateway gives its running sequences to finish (default 30; keep it under the pod's termination grace)" };
    public static readonly Option<string?> ChatTemplate = new("--chat-template") { Description = "Jinja chat template file (or the template text) to use instead of the checkpoint's (see docs/TOKENIZERS.md)" };
    public static readonly Option<double?> DowningStableAfter = new("--downing-stable-after") { Description = "seconds the split-brain resolver waits before downing unreachable nodes (default 20)" };

    public static Command Create()
    {
        var command = new Command("serve", "Run a MoeCluster node (or a whole single-node cluster) and its HTTP API.")
        {
            Config, Model, Roles, Hostname, PublicHostname, Port, HttpHost, HttpPort, SeedNodes, Device, DType, WireDType, ExpertSlots,
            MaxBatch, Context, PrefixCache, MaxQueue, Threads, TokenThreads, Engine, DataDir, Journal, ApiKeysFile, TlsCertificate, TlsKey, TrustedNetwork, DowningStableAfter, MinExpertNodes,
            ExpertTimeout, StepTimeout, RequestTimeout,
            Replication, ReplicationInterval, JobRetention, JobBatchShare, MaxUploads, DrainGrace, ChatTemplate,
            RoutingStatistics, RoutingWindow, Placement, PlacementLoadSlack, RoutingProfile, Int8Experts, Int8Budget, ResidentExperts, ExpertLookahead,
        };
        command.SetAction(parse =>
        {
            var options = Resolve(parse);
            if (options.Engine == "cluster") options.Cluster.CheckSecure();
            var app = NodeHost.Build(options);
            Console.Error.WriteLine($"node {options.Cluster.SelfAddress} roles [{string.Join(",", options.Runtime.Roles)}], HTTP on :{options.HttpPort}");
            app.Run();
            return 0;
        });
        return command;
    }

    static TimeSpan? Seconds(double? value, string name) => value switch
    {
        null => null,
        > 0 => TimeSpan.FromSeconds(value.Value),
        _ => throw new ArgumentException($"{name}: {value} is not a positive number of seconds"),
    };

    static string? ParseWireDType(string? value) => value?.ToLowerInvariant() switch
    {
        null or "float32" or "fp32" => null,
        "bfloat16" or "bf16" => "bfloat16",
        _ => throw new ArgumentException($"--wire-dtype: '{value}' is not supported; use float32 or bfloat16"),
    };

    public static ServeOptions Resolve(ParseResult parse)
    {
        var s = NodeSettings.From(parse, Config);
        var model = s.Get(Model, (string?)null);
        if (string.IsNullOrWhiteSpace(model)) model = DefaultModel.Directory();
        var roles = s.Get(Roles, NodeRoles.All).SelectMany(r => r.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
        foreach (var r in roles)
            if (!NodeRoles.All.Contains(r)) throw new ArgumentException($"--roles: '{r}' is not a role; roles are {string.Join(", ", NodeRoles.All)}");
        var seeds = s.Get(SeedNodes, Array.Empty<string>()).SelectMany(x => x.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
        var engine = s.Get(Engine, (string?)null) ?? "cluster";
        if (engine is not ("cluster" or "local")) throw new ArgumentException($"--engine: '{engine}' is not supported; use cluster or local");
        var keys = (Environment.GetEnvironmentVariable("MOECLUSTER_API_KEYS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        var keysFile = s.Get(ApiKeysFile, (string?)null);
        if (!string.IsNullOrEmpty(keysFile)) keys.AddRange(File.ReadAllLines(keysFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
        return new ServeOptions
        {
            Engine = engine,
            HttpHost = s.Get(HttpHost, (string?)null) ?? "0.0.0.0",
            HttpPort = s.Get(HttpPort, (int?)null) ?? NodeDefaults.HttpPort,
            DataDirectory = s.Get(DataDir, (string?)null) ?? Path.Combine(Environment.CurrentDirectory, "data"),
            JournalConnectionString = s.Get(Journal, (string?)null),
            ApiKeys = keys,
            JobRetention = Seconds(s.Get(JobRetention, (double?)null) * 3600, JobRetention.Name) ?? TimeSpan.FromDays(30),
            JobBatchShare = s.Get(JobBatchShare, (double?)null) ?? 0.5,
            MaxConcurrentUploads = s.Get(MaxUploads, (int?)null) ?? 4,
            DrainGrace = Seconds(s.Get(DrainGrace, (double?)null), DrainGrace.Name) ?? TimeSpan.FromSeconds(30),
            ChatTemplate = s.Get(ChatTemplate, (string?)null),
            Cluster = new ClusterNodeOptions
            {
                Hostname = s.Get(Hostname, (string?)null) ?? "127.0.0.1",
                PublicHostname = s.Get(PublicHostname, (string?)null),
                Port = s.Get(Port, (int?)null) ?? NodeDefaults.RemotingPort,
                SeedNodes = seeds,
                DowningStableAfter = TimeSpan.FromSeconds(s.Get(DowningStableAfter, (double?)null) ?? 20),
                TlsCertificatePath = s.Get(TlsCertificate, (string?)null),
                TlsCertificatePassword = Environment.GetEnvironmentVariable("MOECLUSTER_TLS_CERTIFICATE_PASSWORD"),
                TlsKeyPath = s.Get(TlsKey, (string?)null),
                TrustedNetwork = s.Get(TrustedNetwork, (bool?)null) ?? false,
                WireDType = ParseWireDType(s.Get(WireDType, (string?)null)),
            },
            Runtime = new RuntimeOptions
            {
                ModelDirectory = model,
                Roles = roles,
                Device = s.Get(Device, (string?)null) ?? "cpu",
                DType = s.Get(DType, (string?)null) ?? "float32",
                ExpertSlots = s.Get(ExpertSlots, (int?)null) ?? 0,
                ComputeThreads = s.Get(Threads, (int?)null) ?? 0,
                TokenPathThreads = s.Get(TokenThreads, (int?)null) ?? TokenPathDispatcher.DefaultThreads,
                MinExpertNodes = s.Get(MinExpertNodes, (int?)null) ?? 1,
                ExpertTimeout = Seconds(s.Get(ExpertTimeout, (double?)null), ExpertTimeout.Name) ?? new RuntimeOptions { ModelDirectory = "" }.ExpertTimeout,
                StepTimeout = Seconds(s.Get(StepTimeout, (double?)null), StepTimeout.Name) ?? new RuntimeOptions { ModelDirectory = "" }.StepTimeout,
                RequestTimeout = Seconds(s.Get(RequestTimeout, (double?)null), RequestTimeout.Name) ?? new RuntimeOptions { ModelDirectory = "" }.RequestTimeout,
                Placement = s.Get(Placement, (string?)null) ?? Runtime.Experts.PlacementStrategy.Even,
                RoutingProfile = s.Get(RoutingProfile, (string?)null),
                PlacementLoadSlack = s.Get(PlacementLoadSlack, (double?)null) ?? 0.25,
                RoutingStatistics = s.Get(RoutingStatistics, (bool?)null) ?? true,
                Int8Experts = s.Get(Int8Experts, (string?)null) ?? "none",
                Int8Budget = s.Get(Int8Budget, (double?)null) ?? 0.6,
                ResidentExperts = s.Get(ResidentExperts, (int?)null) ?? 0,
                ExpertLookahead = s.Get(ExpertLookahead, (bool?)null) ?? false,
                RoutingWindowSteps = s.Get(RoutingWindow, (int?)null) is int w ? (w >= 2 ? w : throw new ArgumentException($"--routing-window: {w} is below 2 steps")) : 1000,
                Replication = new Runtime.Replication.HotExpertOptions
                {
                    Enabled = s.Get(Replication, (bool?)null) ?? false,
                    Interval = TimeSpan.FromSeconds(s.Get(ReplicationInterval, (double?)null) ?? 5),
                },
                Batching = new BatchingOptions
                {
                    MaxBatchSize = s.Get(MaxBatch, (int?)null) ?? 32,
                    ContextLength = s.Get(Context, (int?)null) ?? 512,
                    MaxQueuedRequests = s.Get(MaxQueue, (int?)null) ?? 256,
                    PrefixCaching = s.Get(PrefixCache, (bool?)null) ?? true,
                },
            },
        };
    }
}
