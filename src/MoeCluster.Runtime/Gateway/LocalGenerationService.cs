using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MoeCluster.Model;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary>The single-process engine behind <see cref="IGenerationService"/>: one dedicated thread runs continuous
/// batching on a <see cref="LocalEngine"/> (TorchSharp dispose scopes are per thread, so all tensor work stays on it).</summary>
public sealed class LocalGenerationService : IGenerationService, IDisposable
{
    readonly MoeTransformer model;
    readonly LocalEngine engine;
    readonly Channel<Action> inbox = Channel.CreateUnbounded<Action>();
    readonly Dictionary<string, ChannelWriter<GenerationEvent>> streams = new();
    readonly Thread loop;
    readonly CancellationTokenSource stopping = new();
    readonly Metrics.RequestMetricsRecorder metrics;

    public ModelConfig Config => model.Config;

    public LocalGenerationService(MoeTransformer model, BatchingOptions options)
    {
        this.model = model;
        engine = new LocalEngine(model, options);
        metrics = new Metrics.RequestMetricsRecorder(KvBytesPerToken);
        loop = new Thread(Run) { IsBackground = true, Name = "moecluster-local-engine" };
        loop.Start();
    }

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        var events = Channel.CreateUnbounded<GenerationEvent>();
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                if (!engine.Scheduler.TryEnqueue(request)) throw new GatewayOverloadedException($"queue full ({engine.Scheduler.Options.MaxQueuedRequests} waiting)");
                streams[request.Id] = events.Writer;
                metrics.Arrived(request.Id);
                accepted.SetResult();
            }
            catch (Exception e) { accepted.SetException(e); }
        });
        await accepted.Task.ConfigureAwait(false);
        using var registration = cancellation.Register(() => Post(() => engine.Scheduler.Cancel(request.Id)));
        await foreach (var e in events.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            yield return e;
            if (e is SequenceFinished) yield break;
        }
    }

    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default)
    {
        var tcs = new TaskCompletionSource<GatewayStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() => tcs.SetResult(new GatewayStatus(true, engine.Scheduler.Waiting, engine.Scheduler.Running, engine.Scheduler.CachedTokens,
            engine.Scheduler.CachedTokens * KvBytesPerToken, "single process")));
        return tcs.Task.WaitAsync(cancellation);
    }

    long KvBytesPerToken => 2L * model.Config.NumLayers * model.Config.NumKvHeads * model.Config.HeadDim * (model.Options.DType == TorchSharp.torch.ScalarType.Float32 ? 4 : 2);

    void Post(Action a) => inbox.Writer.TryWrite(a);

    void Run()
    {
        var events = new List<GenerationEvent>();
        while (!stopping.IsCancellationRequested)
        {
            while (inbox.Reader.TryRead(out var a)) a();
            events.Clear();
            bool worked;
            try { worked = engine.Step(events, metrics.Step); }
            catch (Exception e)
            {
                engine.Scheduler.FailRunning(e.Message, events);
                worked = true;
            }
            metrics.Gauges(engine.Scheduler);
            foreach (var e in events)
            {
                metrics.Observe(e);
                if (!streams.TryGetValue(e.RequestId, out var w)) continue;
                w.TryWrite(e);
                if (e is SequenceFinished) { w.TryComplete(); streams.Remove(e.RequestId); }
            }
            if (!worked)
            {
                try { inbox.Reader.WaitToReadAsync(stopping.Token).AsTask().Wait(); }
                catch (AggregateException) { return; }
            }
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        loop.Join();
        engine.Dispose();
    }
}
