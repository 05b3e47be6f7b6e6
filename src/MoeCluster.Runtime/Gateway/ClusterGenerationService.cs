using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary><see cref="IGenerationService"/> over the node's <see cref="GatewayActor"/>: one short-lived actor per
/// request receives the gateway's events and feeds them to the caller's async stream.</summary>
public sealed class ClusterGenerationService(ActorSystem system, IActorRef gateway, ModelConfig config) : IGenerationService
{
    public ModelConfig Config => config;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        var channel = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
        var listener = system.ActorOf(Props.Create(() => new RequestListener(channel.Writer)));
        try
        {
            gateway.Tell(new SubmitGeneration(request), listener);
            var first = await channel.Reader.ReadAsync(cancellation).ConfigureAwait(false);
            switch (first)
            {
                case GenerationRejected { Kind: RejectionKind.Overloaded } r: throw new GatewayOverloadedException(r.Message);
                case GenerationRejected { Kind: RejectionKind.Draining } r: throw new GatewayUnavailableException(r.Message);
                case GenerationRejected r: throw new InvalidGenerationRequestException(r.Field, r.Message);
            }
            using var registration = cancellation.Register(() => gateway.Tell(new CancelGeneration(request.Id)));
            await foreach (var item in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                if (item is not GenerationEvent e) continue;
                yield return e;
                if (e is SequenceFinished) yield break;
            }
        }
        finally
        {
            if (cancellation.IsCancellationRequested) gateway.Tell(new CancelGeneration(request.Id));
            listener.Tell(PoisonPill.Instance);
        }
    }

    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default) =>
        gateway.Ask<GatewayStatus>(new GetGatewayStatus(), TimeSpan.FromSeconds(5), cancellation);

    sealed class RequestListener : ReceiveActor
    {
        public RequestListener(ChannelWriter<object> writer)
        {
            ReceiveAny(m => writer.TryWrite(m));
        }
    }
}
