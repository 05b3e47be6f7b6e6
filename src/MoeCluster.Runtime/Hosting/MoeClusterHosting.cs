using Akka;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.Event;
using Akka.Hosting;
using Akka.Remote.Hosting;
using MoeCluster.Runtime.Attention;
using MoeCluster.Runtime.Experts;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Replication;

namespace MoeCluster.Runtime.Hosting;

/// <summary>The one place the runtime's Akka configuration lives: remoting, clustering with the split-brain resolver,
/// the tensor serializer, the expert and attention shard regions with their allocation strategy, and the node-local
/// actors of each role. The node program and the multi-node tests both call this.</summary>
public static class MoeClusterHosting
{
    public const string ExpertTypeName = "expert";
    public const string AttentionTypeName = "attention";

    public static AkkaConfigurationBuilder AddMoeClusterRuntime(this AkkaConfigurationBuilder builder, ClusterNodeOptions node, RuntimeOptions runtime, ModelSource model)
    {
        var roles = runtime.Roles.ToList();
        if (roles.Contains(NodeRoles.Expert) && runtime.ExpertSlots > 0) roles.Add(NodeRoles.ExpertSlotsPrefix + runtime.ExpertSlots);
        if (runtime.Replication.Enabled) runtime.Replication.Thresholds.Validate();   // a bad threshold fails the node at start
        var placement = PlacementStrategy.From(runtime, model.Config);   // a bad --placement or profile fails the node at start
        var precision = ExpertPrecisionPlan.From(runtime, model.Config);
        if (runtime.ResidentExperts < 0) throw new ArgumentException($"--resident-experts: {runtime.ResidentExperts} is negative; give 0 (keep all) or more");
        var loader = roles.Contains(NodeRoles.Expert) ? new ExpertLoader(model, precision.Int8, runtime.ResidentExperts) : null;
        var directory = new ExpertDirectory();   // gateway nodes: where routers send each expert's tokens
        var seeds = (node.SeedNodes.Count > 0 ? node.SeedNodes.ToArray() : [node.SelfAddress]).Select(node.WithProtocol).ToArray();

        builder
            .AddHocon(ConfigurationFactory.ParseString(Hocon(node) + "\n" + TokenPathDispatcher.Hocon(runtime)), HoconAddMode.Prepend)
            .AddSetup(new LogFilterBuilder().Add(new RemotingNoiseFilter()).Build())
            .WithRemoting(new RemoteOptions
            {
                HostName = node.Hostname,
                PublicHostName = node.PublicHostname ?? node.Hostname,
                Port = node.Port,
                MaxFrameSize = node.MaxFrameBytes,
                SendBufferSize = node.MaxFrameBytes * 2,
                ReceiveBufferSize = node.MaxFrameBytes * 2,
                EnableSsl = node.TlsCertificatePath is not null,
                Ssl = node.TlsCertificatePath is null ? null! : ClusterTls.Options(node),
            })
            .WithClustering(new ClusterOptions
            {
                Roles = roles.ToArray(),
                SeedNodes = seeds,
                // No min-nr-of-members for the expert role: the shard coordinator takes that number as the regions it
                // waits for, so after one of two expert nodes died it would never allocate again. The gateway waits
                // for MinExpertNodes expert nodes before it starts experts instead.
            })
            .WithActors((system, registry) =>
            {
                var sharding = ClusterSharding.Get(system);
                var settings = ClusterShardingSettings.Create(system);
                var experts = roles.Contains(NodeRoles.Expert)
                    ? sharding.Start(ExpertTypeName, id => TokenPathDispatcher.On(ExpertActor.Props(id, model, runtime.Faults, loader)), settings.WithRole(NodeRoles.Expert),
                        MessageExtractors.Experts(), new ExpertAllocationStrategy(rebalance: true, role: NodeRoles.Expert, placement: placement), PoisonPill.Instance)
                    : sharding.StartProxy(ExpertTypeName, NodeRoles.Expert, MessageExtractors.Experts());
                var attention = roles.Contains(NodeRoles.Attention)
                    ? sharding.Start(AttentionTypeName, id => TokenPathDispatcher.On(AttentionActor.Props(id, model, runtime.Faults)), settings.WithRole(NodeRoles.Attention),
                        MessageExtractors.Attention(), new ExpertAllocationStrategy(rebalance: false), PoisonPill.Instance)
                    : sharding.StartProxy(AttentionTypeName, NodeRoles.Attention, MessageExtractors.Attention());
                registry.Register<ExpertRegionKey>(experts);
                registry.Register<AttentionRegionKey>(attention);
                if (loader?.Resident is { } resident) system.RegisterOnTermination(resident.Dispose);
                if (roles.Contains(NodeRoles.Expert))
                {
                    system.ActorOf(TokenPathDispatcher.On(ExpertHostActor.Props(experts, model, runtime.ExpertTimeout, runtime.Faults, loader)), ExpertHostActor.Name);
                    // Before the region hands its experts off (phase cluster-sharding-shutdown-region), make every
                    // gateway stop sending expert work until the experts answer from their new homes.
                    CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeClusterShutdown, "moecluster-drain-experts", async () =>
                    {
                        await PlacementWatcherActor.AnnounceDrainingAsync(system, experts, TimeSpan.FromSeconds(10));
                        return Done.Instance;
                    });
                }
                if (roles.Contains(NodeRoles.Gateway))
                {
                    registry.Register<PlacementWatcherKey>(system.ActorOf(PlacementWatcherActor.Props(experts, directory), PlacementWatcherActor.Name));
                    var gatewayName = $"gw-{node.PublicHostname ?? node.Hostname}-{node.Port}";
                    registry.Register<GatewayKey>(system.ActorOf(TokenPathDispatcher.On(GatewayActor.Props(gatewayName, model, runtime, attention, experts, directory)), GatewayActor.Name));
                    registry.Register<ReplicaDirectoryKey>(system.ActorOf(ReplicaDirectoryActor.Props(directory), ReplicaDirectoryActor.Name));
                }
            });
        // Hot-expert replication: one coordinator for the cluster, on the oldest gateway node.
        if (runtime.Replication.Enabled && roles.Contains(NodeRoles.Gateway))
            builder.WithSingleton<ReplicationCoordinatorKey>(ReplicationCoordinatorActor.Name,
                ReplicationCoordinatorActor.Props(runtime.Replication, directory, model.Config),
                new ClusterSingletonOptions { Role = NodeRoles.Gateway }, createProxyToo: false);
        if (runtime.ComputeThreads > 0) TorchSharp.torch.set_num_threads(runtime.ComputeThreads);
        return builder;
    }

    static string Hocon(ClusterNodeOptions node) => $$"""
        moecluster.wire-dtype = "{{node.WireDType ?? "as-computed"}}"
        akka {
          loglevel = {{node.LogLevel}}
          log-dead-letters-during-shutdown = off
          # The host stops the actor system (Akka.Hosting runs coordinated shutdown from its StopAsync), after the
          # ApplicationStopping callbacks that turn the node not-ready and drain the gateway. Akka's own SIGTERM hook
          # would race them: it ran coordinated shutdown at once, so the drain found the gateway already gone and the
          # requests it was running ended with an error instead of finishing.
          coordinated-shutdown.run-by-clr-shutdown-hook = off
          actor {
            serializers { moe-tensor = "MoeCluster.Runtime.Serialization.TensorMessageSerializer, MoeCluster.Runtime" }
            serialization-bindings { "MoeCluster.Runtime.Protocol.ITensorMessage, MoeCluster.Runtime" = moe-tensor }
          }
          cluster {
            downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
            split-brain-resolver {
              active-strategy = keep-majority
              stable-after = {{(int)node.DowningStableAfter.TotalMilliseconds}}ms
            }
            # After a node is downed and removed, the shard coordinator (and a singleton such as the coordinator
            # itself) waits this long before re-homing what the node held. The default is stable-after again, a margin
            # meant for persistent entities that must stop on the losing side of a partition first. Our entities hold
            # no persistent state (experts are read-only weights; an attention cache is rebuilt by re-prefill), so a
            # short margin only shortens recovery.
            down-removal-margin = 1s
            sharding {
              # Experts hold weights: an idle expert must stay loaded.
              passivate-idle-entity-after = off
              remember-entities = off
              # The coordinator's shard allocations are replicated over the expert nodes (distributed data), so a
              # coordinator that moves because its node died starts from the real allocations. The default,
              # persistence, would need a shared journal; with none (the in-memory default) the new coordinator
              # never answers shard-home requests and every step touching the dead node's experts fails.
              state-store-mode = ddata
              rebalance-interval = 10s
              # How often a region asks the coordinator again for shard homes it is waiting on (messages buffered
              # meanwhile) and retries registering with a new coordinator. The default 2 s adds up to seconds to
              # every recovery; 1 s is still a trickle of messages.
              retry-interval = 1s
              handoff-timeout = 60s
            }
          }
        }
        """;
}
