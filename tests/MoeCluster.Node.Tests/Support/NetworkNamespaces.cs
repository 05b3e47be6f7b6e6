using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace MoeCluster.Node.Tests.Support;

/// <summary>A private network of Linux network namespaces for partition tests: one namespace per node, each with a veth
/// pair (<c>eth0</c> inside, <c>p{i}</c> in a hub namespace) plugged into one of two bridges in the hub; a trunk veth
/// pair joins the two bridges. So <see cref="Cut"/> pulls one node's cable, <see cref="Split"/> cuts the trunk (the two
/// sides lose each other, each side still whole), <see cref="Impair"/> adds delay and loss on the link of a node named
/// impairable (an <see cref="ImpairedLink"/> instead of a veth pair: the netem qdisc is not in every kernel).
/// Addresses are 10.213.0.{i+1}/24 and exist only inside these namespaces; nothing is added to the namespace the tests
/// run in. Names carry the test process id (<c>mct-{pid}-{random}-…</c>), so a run removes what it made on
/// <see cref="Dispose"/> and what dead runs left behind on creation, and never touches a live run's namespaces.
/// HTTP reaches a node through <see cref="HttpHandler"/>: a socket created inside that node's namespace, connected to
/// its loopback (the node serves HTTP on 127.0.0.1 there), so the test's own requests never cross the links it cuts.
/// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; <see cref="Unavailable"/> says why not.</summary>
public sealed class NetworkNamespaces : IDisposable
{
    public const string Prefix = "mct-";
    /// <summary>Host names <c>{namespace}.netns</c> in a URL are served by <see cref="HttpHandler"/> inside that namespace.</summary>
    public const string HostSuffix = ".netns";
    /// <summary>Set to <c>off</c> to not run the partition tests where namespaces cannot be made (they then pass
    /// with a NOT RUN line in their output); without it such a machine fails them.</summary>
    public const string OptOutVariable = "MOECLUSTER_PARTITION_TESTS";

    readonly string run;
    readonly Func<int, int> sideOf;
    readonly IReadOnlySet<int> impairable;
    readonly List<int> nodes = new();
    readonly Dictionary<int, ImpairedLink> impaired = new();
    bool disposed;

    string Hub => run + "-hub";

    /// <param name="sideOf">which bridge (0 or 1) node i is plugged into; <see cref="Split"/> separates the two.</param>
    /// <param name="impairable">nodes whose link <see cref="Impair"/> may slow down and make lossy.</param>
    public NetworkNamespaces(Func<int, int>? sideOf = null, IReadOnlySet<int>? impairable = null)
    {
        this.sideOf = sideOf ?? (_ => 0);
        this.impairable = impairable ?? new HashSet<int>();
        RemoveLeftovers();
        run = $"{Prefix}{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..4]}";
        try
        {
            Ip($"netns add {Hub}");
            Ip($"-n {Hub} link set lo up");
            Ip($"-n {Hub} link add br0 type bridge");
            Ip($"-n {Hub} link add br1 type bridge");
            Ip($"-n {Hub} link add trunk0 type veth peer name trunk1");
            Ip($"-n {Hub} link set trunk0 master br0");
            Ip($"-n {Hub} link set trunk1 master br1");
            foreach (var dev in new[] { "br0", "br1", "trunk0", "trunk1" }) Ip($"-n {Hub} link set {dev} up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Namespace(int node) => $"{run}-n{node}";
    public static string AddressOf(int node) => $"10.213.0.{node + 1}";

    /// <summary>Makes node <paramref name="node"/>'s namespace and plugs it into its side's bridge.</summary>
    public void AddNode(int node)
    {
        var ns = Namespace(node);
        Ip($"netns add {ns}");
        nodes.Add(node);
        Ip($"-n {ns} link set lo up");
        if (impairable.Contains(node)) impaired[node] = new ImpairedLink(ns, "eth0", Hub, $"p{node}");
        else Ip($"-n {Hub} link add p{node} type veth peer name eth0 netns {ns}");
        Ip($"-n {Hub} link set p{node} master br{sideOf(node)}");
        Ip($"-n {Hub} link set p{node} up");
        Ip($"-n {ns} addr add {AddressOf(node)}/24 dev eth0");
        Ip($"-n {ns} link set eth0 up");
    }

    /// <summary>Pulls node <paramref name="node"/>'s cable (its hub-side veth down: no carrier, every packet dropped).</summary>
    public void Cut(int node) => Ip($"-n {Hub} link set p{node} down");

    public void Heal(int node) => Ip($"-n {Hub} link set p{node} up");

    /// <summary>Cuts the trunk: the nodes of side 0 and those of side 1 no longer reach each other.</summary>
    public void Split() => Ip($"-n {Hub} link set trunk0 down");

    public void Join() => Ip($"-n {Hub} link set trunk0 up");

    /// <summary>Delay and loss on both directions of node <paramref name="node"/>'s link (<see cref="ImpairedLink.Impairment.None"/>
    /// to restore it); the node must be one named impairable.</summary>
    public void Impair(int node, ImpairedLink.Impairment impairment) =>
        (impaired.TryGetValue(node, out var link) ? link : throw new InvalidOperationException($"node {node} was not made impairable")).Current = impairment;

    /// <summary>Why namespaces cannot be made here (null: they can), found by making and removing one.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces are Linux only";
        var probe = $"{Prefix}{Environment.ProcessId}-probe";
        try
        {
            Ip($"netns add {probe}");
            // `ip netns exec` also needs a mount namespace of its own (it remounts /sys): try it as the nodes will run.
            Run("ip", $"netns exec {probe} ip link set lo up");
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return $"cannot create a network namespace ({e.Message.Trim()}); the partition tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2";
        }
        finally { TryIp($"netns delete {probe}"); }
    }

    /// <summary>Whether the partition tests are switched off on purpose where namespaces cannot be made.</summary>
    public static bool OptedOut => string.Equals(Environment.GetEnvironmentVariable(OptOutVariable), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>An HTTP handler that opens connections to <c>http://{namespace}.netns:{port}</c> on 127.0.0.1:{port}
    /// inside that namespace, and to any other host as usual.</summary>
    public static SocketsHttpHandler HttpHandler() => new()
    {
        ConnectCallback = async (context, ct) =>
        {
            var host = context.DnsEndPoint.Host;
            if (!host.EndsWith(HostSuffix, StringComparison.Ordinal))
            {
                var plain = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try { await plain.ConnectAsync(context.DnsEndPoint, ct); }
                catch { plain.Dispose(); throw; }
                return new NetworkStream(plain, ownsSocket: true);
            }
            var socket = SocketInside(host[..^HostSuffix.Length]);
            try { await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, context.DnsEndPoint.Port), ct); }
            catch { socket.Dispose(); throw; }
            return new NetworkStream(socket, ownsSocket: true);
        },
    };

    const int CloneNewNet = 0x40000000;

    [DllImport("libc", SetLastError = true)]
    static extern int setns(int fd, int nstype);

    /// <summary>A TCP socket belongs to the network namespace of the thread that creates it.</summary>
    static Socket SocketInside(string ns) =>
        OnThreadIn(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });

    /// <summary>Runs <paramref name="action"/> on a thread of its own that enters network namespace
    /// <paramref name="ns"/> and then ends, so no thread of the test process stays switched; what it creates there
    /// (a socket, a TAP device) belongs to that namespace.</summary>
    internal static T OnThreadIn<T>(string ns, Func<T> action)
    {
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{ns}");
                if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new IOException($"setns failed: errno {Marshal.GetLastPInvokeError()}");
                result = action();
            }
            catch (Exception e) { error = e; }
        });
        thread.Start();
        thread.Join();
        return error is null ? result! : throw new IOException($"in network namespace {ns}: {error.Message}", error);
    }

    /// <summary>Removes namespaces of earlier runs whose test process is gone, with whatever still runs in them.</summary>
    static void RemoveLeftovers()
    {
        foreach (var ns in Names())
        {
            var owner = ns[Prefix.Length..].Split('-')[0];
            if (!int.TryParse(owner, out var pid) || Directory.Exists($"/proc/{pid}")) continue;
            KillProcessesIn(ns);
            TryIp($"netns delete {ns}");
        }
    }

    static IEnumerable<string> Names() =>
        Run("ip", "netns list").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).ToList();

    /// <summary>The processes a test started in a namespace (its nodes), ended by id before the namespace goes.</summary>
    static void KillProcessesIn(string ns)
    {
        string pids;
        try { pids = Run("ip", $"netns pids {ns}"); }
        catch (InvalidOperationException) { return; }
        foreach (var line in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (int.TryParse(line.Trim(), out var pid))
                try { using var p = Process.GetProcessById(pid); p.Kill(entireProcessTree: true); p.WaitForExit(10_000); }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { /* already gone */ }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var node in nodes)
        {
            KillProcessesIn(Namespace(node));
            if (impaired.Remove(node, out var link)) link.Dispose();
            TryIp($"netns delete {Namespace(node)}");
        }
        TryIp($"netns delete {Hub}");   // takes the bridges and the hub ends of every veth with it
    }

    static void Ip(string arguments) => Run("ip", arguments);

    static void TryIp(string arguments)
    {
        try { Run("ip", arguments); }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { /* already gone */ }
    }

    static string Run(string program, string arguments)
    {
        var info = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"`{program} {arguments}` exited with {p.ExitCode}: {stderr.Trim()}");
        return stdout.Result;
    }
}
