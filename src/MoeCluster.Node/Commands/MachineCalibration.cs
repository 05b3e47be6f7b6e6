using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using MoeCluster.Placement;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Node.Commands;

/// <summary>The rates <see cref="CostModel"/> needs, measured on this machine with the shapes of the model at hand:
/// a matrix–vector product over a pool of expert-sized weights as large as the model's experts (so caches help exactly
/// as much as they would serving it), a 32-row product, one small operation as the model's RMSNorm runs them, and — between two actor
/// systems on loopback with the runtime's tensor serializer — a local actor hop, a remote round trip and the
/// loopback bytes per second. Medians, so a busy machine's outliers do not decide.</summary>
public static class MachineCalibration
{
    public sealed record Result(MachineCeilings Machine, double LocalHopSeconds, double MessageSeconds, double LoopbackBytesPerSecond);

    public static Result Measure(int hidden, int expertWidth, long expertPoolBytes, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int elementSize = dtype == ScalarType.Float32 ? 4 : 2;
        long weightBytes = (long)hidden * expertWidth * elementSize;
        int pool = (int)Math.Clamp(expertPoolBytes / Math.Max(1, weightBytes), 1, 512);
        var weights = Enumerable.Range(0, pool).Select(_ => randn([expertWidth, hidden]).to(dtype)).ToArray();
        var one = randn([1, hidden]).to(dtype);
        var rows = randn([32, hidden]).to(dtype);
        int next = 0;
        double gemv = Median(16, 200, () => { using var y = nn.functional.linear(one, weights[next++ % pool]); });
        double gemm = Median(4, 60, () => { using var y = nn.functional.linear(rows, weights[next++ % pool]); });
        // A small operation as the model runs them: one RMSNorm of one row is 8 of them (casts, pow, mean, add, rsqrt,
        // two products) inside a dispose scope, allocation included.
        var a = randn([1, hidden]).to(dtype);
        using var norm = new MoeCluster.Model.Layers.RmsNorm(hidden, 1e-6, new MoeCluster.Model.Layers.ModuleOptions(dtype, CPU));
        double op = Median(100, 1000, () => { using var y = norm.forward(a); }) / 8;
        var (hop, message, loopback) = Messages(hidden, dtype);
        return new Result(new MachineCeilings(weightBytes / gemv, 2.0 * 32 * hidden * expertWidth / gemm, op, Environment.ProcessorCount), hop, message, loopback);
    }

    /// <summary>Median seconds of <paramref name="runs"/> runs after <paramref name="warmup"/> untimed ones.</summary>
    internal static double Median(int warmup, int runs, Action body)
    {
        for (int i = 0; i < warmup; i++) body();
        var t = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            body();
            t[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        Array.Sort(t);
        return t[runs / 2];
    }

    sealed class Echo : ReceiveActor
    {
        public Echo() => Receive<ComputeExpert>(m => Sender.Tell(new ExpertComputed(m.ExpertId, m.CorrelationId, m.Input)));
    }

    /// <summary>Local hop, small remote round trip, and loopback bytes per second from a large round trip.</summary>
    static (double Hop, double Message, double BytesPerSecond) Messages(int hidden, ScalarType dtype)
    {
        var a = ActorSystem.Create("calibrate", Config(FreePort()));
        var b = ActorSystem.Create("calibrate", Config(FreePort()));
        try
        {
            var local = a.ActorOf(Props.Create(() => new Echo()));
            b.ActorOf(Props.Create(() => new Echo()), "echo");
            var remote = a.ActorSelection($"{Akka.Actor.Address.Parse(b.Settings.Config.GetString("moecluster.calibrate-address"))}/user/echo")
                .ResolveOne(TimeSpan.FromSeconds(10)).Result;
            double RoundTrip(IActorRef to, int rowCount, int runs) => Median(runs / 5, runs, () =>
            {
                var payload = TensorPayload.Own(zeros([rowCount, hidden], dtype));
                to.Ask<ExpertComputed>(new ComputeExpert("L0.E0", 1, payload), TimeSpan.FromSeconds(10)).Result.Output.Take().Dispose();
            });
            double hop = RoundTrip(local, 1, 400) / 2;
            double small = RoundTrip(remote, 1, 200);
            // 1 MiB each way: large enough that its bytes, not the round trip, decide its time.
            int big = Math.Max(2, (1 << 20) / (hidden * (dtype == ScalarType.Float32 ? 4 : 2)));
            double large = RoundTrip(remote, big, 40);
            double bytes = 2.0 * (big - 1) * hidden * (dtype == ScalarType.Float32 ? 4 : 2);
            // On a busy machine the difference can vanish into noise; the large round trip alone is then the bound.
            return (hop, small, bytes / (large - small > 0.2 * large ? large - small : large));
        }
        finally
        {
            a.Terminate().Wait(TimeSpan.FromSeconds(10));
            b.Terminate().Wait(TimeSpan.FromSeconds(10));
        }
    }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static Akka.Configuration.Config Config(int port) => ConfigurationFactory.ParseString($$"""
        moecluster.calibrate-address = "akka.tcp://calibrate@127.0.0.1:{{port}}"
        akka {
          loglevel = OFF
          stdout-loglevel = OFF
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
          actor {
            provider = remote
            serializers { moe-tensor = "MoeCluster.Runtime.Serialization.TensorMessageSerializer, MoeCluster.Runtime" }
            serialization-bindings { "MoeCluster.Runtime.Protocol.ITensorMessage, MoeCluster.Runtime" = moe-tensor }
          }
          remote.dot-netty.tcp { hostname = 127.0.0.1, port = {{port}}, maximum-frame-size = 4MiB, send-buffer-size = 8MiB, receive-buffer-size = 8MiB }
        }
        """);
}
