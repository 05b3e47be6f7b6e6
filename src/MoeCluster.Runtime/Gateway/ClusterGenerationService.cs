using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary><see cref="IGenerationService"/> over the node's <see cref="GatewayActor"/>: one short-lived actor per
/// request receives the gateway's events and feeds them to the caller's async stream. No caller waits forever: the
/// listener watches the gateway (a gateway that stops ends the stream with an error, and so does the listener stopping
/// with the actor system, as when the split-brain resolver downs this node), the gateway must accept or
/// refuse within <see cref="AcceptTimeout"/>, and a request not finished within the request deadline is cancelled and
/// ends with an error.</summary>
public sealed class ClusterGenerationService(ActorSystem system, IActorRef gateway, ModelConfig config, TimeSpan? requestDeadline = null) : IGenerationService
{
    /// <summary>The gateway answers a submission at once (accepted, queued or refused); silence this long means it is
    /// gone or wedged.</summary>
    public static readonly TimeSpan AcceptTimeout = TimeSpan.FromSeconds(10);

    readonly TimeSpan deadline = requestDeadline ?? new RuntimeOptions { ModelDirectory = "" }.RequestTimeout;

    public ModelConfig Config => config;

    /// <summary>What the listener writes when the gateway it watches terminates.</summary>
    sealed record GatewayStopped;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        var channel = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
        IActorRef listener;
        try { listener = system.ActorOf(Props.Create(() => new RequestListener(gateway, channel.Writer))); }
        catch (InvalidOperationException) when (system.WhenTerminated.IsCompleted || CoordinatedShutdown.Get(system).ShutdownReason is not null)
        {
            throw new GatewayUnavailableException("this node is shutting down (left the cluster or was downed); send the request to another gateway");
        }
        var generated = new List<int>();
        try
        {
            gateway.Tell(new SubmitGeneration(request), listener);
            object first;
            using (var accept = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
            {
                accept.CancelAfter(AcceptTimeout);
                try { first = await channel.Reader.ReadAsync(accept.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                {
                    throw new GatewayUnavailableException($"the gateway did not answer within {AcceptTimeout.TotalSeconds:0}s");
                }
            }
            switch (first)
            {
                case GenerationRejected { Kind: RejectionKind.Overloaded } r: throw new GatewayOverloadedException(r.Message);
                case GenerationRejected { Kind: RejectionKind.Draining } r: throw new GatewayUnavailableException(r.Message);
                case GenerationRejected r: throw new InvalidGenerationRequestException(r.Field, r.Message);
                case GatewayStopped: throw new GatewayUnavailableException("the gateway stopped before it answered");
            }
            using var registration = cancellation.Register(() => gateway.Tell(new CancelGeneration(request.Id)));
            using var expiry = new CancellationTokenSource(deadline);
            bool reported = false;
            while (true)
            {
                object? item = null;
                try { item = await channel.Reader.ReadAsync(expiry.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { /* the deadline passed */ }
                switch (item)
                {
                    case null:
                        gateway.Tell(new CancelGeneration(request.Id));
                        yield return Failure(request, generated, $"the request did not finish within its {deadline.TotalSeconds:0}s deadline");
                        yield break;
                    case GatewayStopped when !reported:
                        // The gateway hands back what it had not streamed (below), but its Terminated can overtake
                        // that refusal: a request that saw no event is resent elsewhere either way.
                        throw new GatewayUnavailableException("the gateway stopped before this request produced anything; send it to another gateway");
                    case GatewayStopped:
                        yield return Failure(request, generated, "the gateway stopped while this request was running");
                        yield break;
                    case GenerationRejected { Kind: RejectionKind.Draining } r:
                        // Nothing of it had been streamed when the gateway drained or stopped: handed back before any
                        // event, so the caller can resend it elsewhere exactly as if it had been refused at the door.
                        throw new GatewayUnavailableException(r.Message);
                    case GenerationEvent e:
                        if (e is TokenGenerated t) generated.Add(t.Token);
                        reported = true;
                        yield return e;
                        if (e is SequenceFinished) yield break;
                        break;
                }
            }
        }
        finally
        {
            if (cancellation.IsCancellationRequested) gateway.Tell(new CancelGeneration(request.Id));
            listener.Tell(PoisonPill.Instance);
        }
    }

    static SequenceFinished Failure(GenerationRequest request, List<int> generated, string error) =>
        new(request.Id, FinishReason.Error, request.PromptTokens.Count, generated.ToArray(), error);

    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default) =>
        gateway.Ask<GatewayStatus>(new GetGatewayStatus(), TimeSpan.FromSeconds(5), cancellation);

    sealed class RequestListener : ReceiveActor
    {
        public RequestListener(IActorRef gateway, ChannelWriter<object> writer)
        {
            this.writer = writer;
            Context.Watch(gateway);
            Receive<Terminated>(_ => writer.TryWrite(new GatewayStopped()));   // only the gateway is watched
            ReceiveAny(m => writer.TryWrite(m));
        }

        readonly ChannelWriter<object> writer;

        // Stopped with the actor system (this node downed or shutting down) the gateway's Terminated never comes: the
        // request ends here. After a request's normal end nobody reads the channel any more, so this is harmless then.
        protected override void PostStop() => writer.TryWrite(new GatewayStopped());
    }
}
