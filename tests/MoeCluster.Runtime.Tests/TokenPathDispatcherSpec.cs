using Akka.Actor;
using Akka.Dispatch;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>The actors of a decode step run on the token-path dispatcher (a few dedicated threads), not on the .NET
/// thread pool where every hand-off woke another thread with an OpenMP team of its own.</summary>
public class TokenPathDispatcherSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 2, ContextLength = 32, MaxPrefillTokensPerStep = 16 };

    /// <summary>Every actor a decode step passes through on a one-node cluster, found by path.</summary>
    static async Task<IReadOnlyList<IActorRef>> TokenPathActors(InProcessNode node)
    {
        var system = node.System;
        var found = new List<IActorRef> { node.Registry.Get<GatewayKey>() };
        foreach (var path in new[] { "/user/gateway/router-*", "/user/expert-host", "/system/sharding/expert/*/*", "/system/sharding/attention/*/*" })
        {
            var collector = system.ActorOf(Props.Create(() => new Collector()));
            var answers = await collector.Ask<List<IActorRef>>(new Collector.Identify(path), TimeSpan.FromSeconds(10));
            Assert.True(answers.Count > 0, $"no actor answered at {path}");
            found.AddRange(answers);
            system.Stop(collector);
        }
        return found;
    }

    /// <summary>Sends Identify to a path (wildcards allowed) and answers with whoever replied within a short window.</summary>
    sealed class Collector : ReceiveActor, IWithTimers
    {
        public sealed record Identify(string Path);
        sealed record Done;
        public ITimerScheduler Timers { get; set; } = null!;

        public Collector()
        {
            var refs = new List<IActorRef>();
            IActorRef? asker = null;
            Receive<Identify>(m =>
            {
                asker = Sender;
                Context.ActorSelection(m.Path).Tell(new Akka.Actor.Identify(m.Path));
                // Local actors answer within microseconds; the timer only closes the window.
                Timers.StartSingleTimer("done", new Done(), TimeSpan.FromMilliseconds(500));
            });
            Receive<ActorIdentity>(m => { if (m.Subject is not null) refs.Add(m.Subject); });
            Receive<Done>(_ => asker!.Tell(refs.ToList()));
        }
    }

    static MessageDispatcher DispatcherOf(IActorRef actor) =>
        Assert.IsAssignableFrom<ActorCell>(Assert.IsAssignableFrom<ActorRefWithCell>(actor).Underlying).Dispatcher;

    [Fact]
    public async Task With_token_threads_the_gateway_routers_expert_host_and_entities_run_on_the_dedicated_token_path_dispatcher()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching, TokenPathThreads = 1 }, 1);
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var actors = await TokenPathActors(nodes[0]);
            // 1 gateway, a router per layer, 1 expert host, every expert and every attention layer.
            var c = model.Config;
            Assert.Equal(1 + c.NumLayers + 1 + c.MoeLayers.Count() * c.NumExperts + c.NumLayers, actors.Count);
            foreach (var a in actors)
            {
                var dispatcher = DispatcherOf(a);
                Assert.True(dispatcher.Id == TokenPathDispatcher.Id, $"{a.Path} runs on {dispatcher.Id}");
            }
            // And a step still runs through them.
            var f = await service.GenerateToEndAsync(new GenerationRequest("r", [3, 4, 5], 4));
            Assert.Equal(FinishReason.Length, f.Reason);
            // The dispatcher's own threads exist (not the .NET thread pool's), named after it.
            if (OperatingSystem.IsLinux()) Assert.Contains(ThreadNames(), n => TokenPathDispatcher.Id.StartsWith(n, StringComparison.Ordinal) && n.Length >= 10);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    /// <summary>Names of this process's threads (Linux: /proc; the kernel keeps the first 15 characters).</summary>
    static IReadOnlyList<string> ThreadNames() =>
        Directory.EnumerateDirectories("/proc/self/task").Select(t => { try { return File.ReadAllText(Path.Combine(t, "comm")).Trim(); } catch (IOException) { return ""; } }).ToList();
}
