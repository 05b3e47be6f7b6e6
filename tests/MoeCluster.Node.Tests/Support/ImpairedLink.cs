using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace MoeCluster.Node.Tests.Support;

/// <summary>A network link with adjustable delay and loss, for kernels without the netem qdisc (`tc qdisc add … netem`
/// answers "Specified qdisc kind is unknown" on this project's build machine): two TAP devices, one inside the node's
/// namespace and one in the hub's, and a relay in this process that copies Ethernet frames between them, dropping a
/// share of them at random and holding each for the delay, in each direction. The devices exist while this object
/// does (closing their descriptors removes them). TAP devices opened without offload flags get frames the kernel has
/// already segmented and checksummed, so every frame relays as it is.</summary>
public sealed class ImpairedLink : IDisposable
{
    readonly int nodeSide, hubSide;
    readonly Thread[] threads;
    volatile bool stopping;
    volatile Impairment current = Impairment.None;

    public sealed record Impairment(TimeSpan Delay, double Loss)
    {
        public static readonly Impairment None = new(TimeSpan.Zero, 0);
        public override string ToString() => $"delay {Delay.TotalMilliseconds:0} ms, loss {Loss:P0} each way";
    }

    /// <summary>Creates TAP <paramref name="nodeDevice"/> in <paramref name="nodeNamespace"/> and
    /// <paramref name="hubDevice"/> in <paramref name="hubNamespace"/> (both down, unaddressed) and starts relaying.</summary>
    public ImpairedLink(string nodeNamespace, string nodeDevice, string hubNamespace, string hubDevice)
    {
        nodeSide = OpenTap(nodeNamespace, nodeDevice);
        hubSide = OpenTap(hubNamespace, hubDevice);
        threads = [.. Direction(nodeSide, hubSide), .. Direction(hubSide, nodeSide)];
        foreach (var t in threads) t.Start();
    }

    public Impairment Current { get => current; set => current = value; }

    /// <summary>A reader that drops and time-stamps frames and a writer that sends each when its delay is over; one
    /// queue between them keeps the frames in order.</summary>
    Thread[] Direction(int from, int to)
    {
        var queue = new BlockingCollection<(long due, byte[] frame)>();
        var reader = new Thread(() =>
        {
            var buffer = new byte[65536];
            var fds = new PollFd[] { new() { Fd = from, Events = PollIn } };
            while (!stopping)
            {
                if (poll(fds, 1, 50) <= 0) continue;
                var n = (int)read(from, buffer, buffer.Length);
                if (n <= 0) continue;
                var impairment = current;
                if (impairment.Loss > 0 && Random.Shared.NextDouble() < impairment.Loss) continue;
                queue.Add((Environment.TickCount64 + (long)impairment.Delay.TotalMilliseconds, buffer[..n]));
            }
            queue.CompleteAdding();
        }) { IsBackground = true, Name = "impaired-link reader" };
        var writer = new Thread(() =>
        {
            foreach (var (due, frame) in queue.GetConsumingEnumerable())
            {
                var wait = due - Environment.TickCount64;
                // Holding the frame is what this link is for: the wait is the emulated propagation delay.
                if (wait > 0) Thread.Sleep((int)wait);
                write(to, frame, frame.Length);   // fails (EIO) while the other side is down: the frame is lost, as on a cut cable
            }
        }) { IsBackground = true, Name = "impaired-link writer" };
        return [reader, writer];
    }

    const int ReadWrite = 2, PollIn = 1;
    const uint TunSetIff = 0x400454ca;
    const short TapNoPacketInfo = 0x0002 | 0x1000;   // IFF_TAP | IFF_NO_PI

    [StructLayout(LayoutKind.Sequential)]
    struct PollFd { public int Fd; public short Events; public short Revents; }

    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Ansi)]
    struct InterfaceRequest
    {
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 16)] public string Name;
        public short Flags;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 22)] public byte[] Padding;
    }

    [DllImport("libc", SetLastError = true)] static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] static extern int ioctl(int fd, uint request, ref InterfaceRequest ifr);
    [DllImport("libc", SetLastError = true)] static extern nint read(int fd, byte[] buffer, nint count);
    [DllImport("libc", SetLastError = true)] static extern nint write(int fd, byte[] buffer, nint count);
    [DllImport("libc", SetLastError = true)] static extern int poll([In, Out] PollFd[] fds, uint count, int timeoutMs);

    /// <summary>A TAP device is created in the network namespace of the thread that asks for it.</summary>
    static int OpenTap(string ns, string device) => NetworkNamespaces.OnThreadIn(ns, () =>
    {
        int fd = open("/dev/net/tun", ReadWrite);
        if (fd < 0) throw new IOException($"open /dev/net/tun: errno {Marshal.GetLastPInvokeError()}");
        var request = new InterfaceRequest { Name = device, Flags = TapNoPacketInfo, Padding = new byte[22] };
        if (ioctl(fd, TunSetIff, ref request) == 0) return fd;
        var errno = Marshal.GetLastPInvokeError();
        close(fd);
        throw new IOException($"TUNSETIFF {device}: errno {errno}");
    });

    public void Dispose()
    {
        stopping = true;
        foreach (var t in threads) t.Join();
        close(nodeSide);
        close(hubSide);
    }
}
