using System.Net;
using System.Net.Sockets;

namespace MoeCluster.TestSupport;

public static class FreePorts
{
    static readonly HashSet<int> handedOut = new();

    /// <summary>A loopback TCP port nobody listens on right now and that this process has not handed out before. The
    /// kernel can offer a port again once the probe closes it, before the node given it has bound it, and a second node
    /// on the port does not fail to start: in a red CI run two expert nodes both logged "listening on 127.0.0.1:35853"
    /// (Akka's transport binds with address reuse, which .NET turns into SO_REUSEPORT on Linux), the seed's connections
    /// were split between them, and the cluster never became ready.</summary>
    public static int Next()
    {
        lock (handedOut)
            while (true)
            {
                using var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                int port = ((IPEndPoint)l.LocalEndpoint).Port;
                if (handedOut.Add(port)) return port;
            }
    }
}
