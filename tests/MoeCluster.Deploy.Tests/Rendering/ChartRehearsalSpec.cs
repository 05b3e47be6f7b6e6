using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MoeCluster.Model;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Deploy.Tests.Rendering;

/// <summary>
/// Issue 10.2: a rehearsal of the chart. The chart is rendered (values.yaml, and values-production.yaml over it) and
/// for each pool — pod 0, and every other pod named as a seed — `moecluster serve` starts with exactly the arguments
/// and environment its StatefulSet gives: values, $(VAR) expansion, fieldRefs, secretKeyRefs (from the rendered
/// Secret, or stand-ins for the example's existing Secrets), secret volumes written where they are mounted. Only what
/// loopback forces is rewritten, each rewrite checked against the chart first: pod DNS names and the pod IP become
/// 127.0.0.1, each pod gets its own ports (after checking the chart's ports equal the named container ports the probes
/// use), the model path, data dir and secret mount paths point at temporary directories, and cuda becomes cpu. Then the
/// probes the chart configures must pass on the paths, ports and within the timings it gives, every scrape target
/// (pod annotations or ServiceMonitor endpoints) must answer with the node's series, and a completion must go through
/// with the API key. A flag, variable, path or port the program does not honour fails it.
/// </summary>
public sealed class ChartRehearsalSpec(ITestOutputHelper output)
{
    public static TheoryData<string> ValueFiles() => new() { "values.yaml", "examples/values-production.yaml" };

    [Theory]
    [MemberData(nameof(ValueFiles))]
    public async Task Every_pool_starts_from_its_rendered_statefulset_passes_its_probes_and_is_scraped(string valuesFile)
    {
        using var database = new PostgresDatabase();
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-rehearsal", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var overrides = valuesFile == "values.yaml" ? [] : new[] { YamlJson.LoadFile(RepoPaths.Chart(valuesFile)) };
        var docs = HelmChart.Render(overrides);
        var secrets = docs.Where(d => (string?)d["kind"] == "Secret").ToDictionary(
            d => (string)d["metadata"]!["name"]!,
            d => ((JsonObject)d["data"]!).ToDictionary(e => e.Key, e => Convert.FromBase64String((string)e.Value!)));
        AddStandIns(secrets, database, dir);

        var sets = docs.Where(d => (string?)d["kind"] == "StatefulSet").ToList();
        var firstEnv = Container(sets[0])["env"]!.AsArray();
        var seeds = ((string)firstEnv.First(e => (string)e!["name"]! == "MOECLUSTER_SEED_NODES")!["value"]!).Split(',');
        var seedPods = seeds.Select(s => Regex.Match(s, @"@([^.]+)\.").Groups[1].Value).ToHashSet();
        var pods = sets.SelectMany(s => Enumerable.Range(0, (int)((long?)s["spec"]!["replicas"] ?? 1)).Select(i => (Set: s, Name: $"{s["metadata"]!["name"]}-{i}")))
            .Where(p => p.Name.EndsWith("-0", StringComparison.Ordinal) || seedPods.Contains(p.Name)).ToList();
        var ports = pods.ToDictionary(p => p.Name, _ => (Remoting: FreePorts.Next(), Http: FreePorts.Next()));
        Assert.All(seedPods, s => Assert.Contains(s, ports.Keys));

        var processes = new List<Pod>();
        try
        {
            foreach (var (set, name) in pods)
                processes.Add(Pod.Start(name, set, secrets, ports, checkpoint, dir));
            using var http = new HttpClient();
            foreach (var pod in processes) await pod.ProbeAsync(http, "startupProbe");
            foreach (var pod in processes) await pod.ProbeAsync(http, "readinessProbe");
            foreach (var pod in processes) await pod.ProbeAsync(http, "livenessProbe", once: true);

            // Scrape targets: the ServiceMonitor's endpoints, else the pod annotations.
            var monitor = docs.FirstOrDefault(d => (string?)d["kind"] == "ServiceMonitor");
            foreach (var pod in processes)
            {
                string path, portName;
                if (monitor is not null)
                {
                    var endpoint = monitor["spec"]!["endpoints"]![0]!;
                    (path, portName) = ((string)endpoint["path"]!, (string)endpoint["port"]!);
                }
                else
                {
                    var annotations = pod.Set["spec"]!["template"]!["metadata"]!["annotations"]!;
                    Assert.Equal("true", (string)annotations["prometheus.io/scrape"]!);
                    path = (string)annotations["prometheus.io/path"]!;
                    portName = pod.PortName(int.Parse((string)annotations["prometheus.io/port"]!));
                }
                var metrics = await http.GetStringAsync(pod.Url(portName, path));
                Assert.Contains("moecluster_cluster_members", metrics);
                if (pod.Roles.Contains("expert")) Assert.Contains("moecluster_expert_weights_resident_bytes", metrics);
            }

            // The API behind the key the chart configured, across the rendered cluster (TLS on, mixed dtypes in production).
            var gateway = processes.First(p => p.Roles.Contains("gateway"));
            var key = Encoding.UTF8.GetString(secrets[(string)gateway.SecretRef("MOECLUSTER_API_KEYS")["name"]!][(string)gateway.SecretRef("MOECLUSTER_API_KEYS")["key"]!]).Split(',')[0];
            using (var noKey = await http.GetAsync(gateway.Url("http", "/v1/models"))) Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            var modelName = Path.GetFileName(checkpoint.TrimEnd('/'));
            using var completion = await http.PostAsync(gateway.Url("http", "/v1/completions"),
                new StringContent($$"""{"model":"{{modelName}}","prompt":[4,8,15],"max_tokens":3}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
            output.WriteLine(string.Join("\n", processes.Select(p => $"{p.Name}: healthz after {p.StartupSeconds:0.0}s, ready after {p.ReadySeconds:0.0}s")));
        }
        catch (Exception)
        {
            foreach (var p in processes) output.WriteLine(p.Tail());
            throw;
        }
        finally { foreach (var p in processes) p.Dispose(); }
    }

    /// <summary>The example names Secrets that exist in a real cluster; here: the test database, a key, a keystore.</summary>
    static void AddStandIns(Dictionary<string, Dictionary<string, byte[]>> secrets, PostgresDatabase database, string dir)
    {
        secrets.TryAdd("moecluster-journal", new() { ["connection-string"] = Encoding.UTF8.GetBytes(database.ConnectionString) });
        secrets.TryAdd("moecluster-api-keys", new() { ["api-keys"] = "sk-rehearsal-1"u8.ToArray() });
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=moecluster-node", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        secrets.TryAdd("moecluster-cluster-tls", new() { ["keystore.p12"] = cert.Export(X509ContentType.Pkcs12, "rehearsal") });
        secrets.TryAdd("moecluster-cluster-tls-password", new() { ["password"] = "rehearsal"u8.ToArray() });
    }

    static JsonObject Container(JsonObject set) => (JsonObject)set["spec"]!["template"]!["spec"]!["containers"]![0]!;

    /// <summary>One pod of a rendered StatefulSet as a `moecluster` process.</summary>
    sealed class Pod : IDisposable
    {
        readonly Process process;
        readonly StringBuilder log = new();
        readonly Dictionary<string, int> portsByName = new();
        readonly Stopwatch clock = Stopwatch.StartNew();
        public string Name { get; }
        public JsonObject Set { get; }
        public JsonObject Container { get; }
        public string[] Roles { get; private set; } = [];
        public double StartupSeconds, ReadySeconds;

        Pod(string name, JsonObject set, Process process)
        {
            Name = name;
            Set = set;
            Container = ChartRehearsalSpec.Container(set);
            this.process = process;
        }

        public static Pod Start(string name, JsonObject set, Dictionary<string, Dictionary<string, byte[]>> secrets,
            Dictionary<string, (int Remoting, int Http)> ports, string checkpoint, string dir)
        {
            var container = ChartRehearsalSpec.Container(set);
            var podDir = Path.Combine(dir, name);
            var env = new Dictionary<string, string>();
            // Secret volumes, written where they are mounted (under the pod's directory).
            var mounts = new Dictionary<string, string>();
            foreach (var mount in container["volumeMounts"]!.AsArray())
            {
                var volume = set["spec"]!["template"]!["spec"]!["volumes"]!.AsArray().FirstOrDefault(v => (string)v!["name"]! == (string)mount!["name"]!)
                    ?? set["spec"]!["volumeClaimTemplates"]?.AsArray().FirstOrDefault(v => (string)v!["metadata"]!["name"]! == (string)mount!["name"]!)
                    ?? throw new InvalidOperationException($"{name}: volumeMount {mount!["name"]} names no volume or claim template");
                var local = Path.Combine(podDir, "mnt", ((string)mount!["mountPath"]!).TrimStart('/'));
                Directory.CreateDirectory(local);
                mounts[(string)mount["mountPath"]!] = local;
                if (volume["secret"] is { } secret)
                    foreach (var item in secret["items"]!.AsArray())
                        File.WriteAllBytes(Path.Combine(local, (string)item!["path"]!), secrets[(string)secret["secretName"]!][(string)item["key"]!]);
            }
            foreach (var e in container["env"]!.AsArray())
            {
                string key = (string)e!["name"]!;
                string value;
                if (e["value"] is { } v) value = Regex.Replace((string)v!, @"\$\((\w+)\)", m => env[m.Groups[1].Value]);
                else if (e["valueFrom"]!["fieldRef"] is { } field)
                    value = (string)field["fieldPath"]! switch { "metadata.name" => name, "metadata.namespace" => HelmChart.Namespace, "status.podIP" => "127.0.0.1", var f => throw new NotSupportedException(f) };
                else
                {
                    var secret = e["valueFrom"]!["secretKeyRef"]!;
                    value = Encoding.UTF8.GetString(secrets[(string)secret["name"]!][(string)secret["key"]!]);
                }
                env[key] = value;
            }
            var pod = new Pod(name, set, null!);
            foreach (var p in container["ports"]!.AsArray()) pod.portsByName[(string)p!["name"]!] = (int)(long)p["containerPort"]!;
            // The chart's own ports must be the container ports the probes name, before loopback moves them.
            Assert.Equal(pod.portsByName["remoting"].ToString(), env["MOECLUSTER_PORT"]);
            Assert.Equal(pod.portsByName["http"].ToString(), env["MOECLUSTER_HTTP_PORT"]);
            int chartRemoting = pod.portsByName["remoting"];
            var mine = ports[name];
            pod.portsByName["remoting"] = mine.Remoting;
            pod.portsByName["http"] = mine.Http;
            env["MOECLUSTER_PORT"] = mine.Remoting.ToString();
            env["MOECLUSTER_HTTP_PORT"] = mine.Http.ToString();
            Assert.EndsWith($".{HelmChart.Namespace}.svc.cluster.local", env["MOECLUSTER_PUBLIC_HOSTNAME"]);
            Assert.StartsWith(name + ".", env["MOECLUSTER_PUBLIC_HOSTNAME"]);
            env["MOECLUSTER_PUBLIC_HOSTNAME"] = "127.0.0.1";
            env["MOECLUSTER_SEED_NODES"] = string.Join(",", env["MOECLUSTER_SEED_NODES"].Split(',').Select(s =>
            {
                var m = Regex.Match(s, @"^(akka\.tcp://moecluster@)([^.]+)\.[^:]+:(\d+)$");
                Assert.True(m.Success, $"seed {s} is not akka.tcp://moecluster@<pod>.<headless>…:<port>");
                Assert.Equal(chartRemoting.ToString(), m.Groups[3].Value);
                return ports.TryGetValue(m.Groups[2].Value, out var p) ? $"{m.Groups[1].Value}127.0.0.1:{p.Remoting}" : null;
            }).Where(s => s is not null));
            Assert.Contains(env["MOECLUSTER_DATA_DIR"], mounts.Keys);   // the data dir is a mounted volume
            foreach (var k in env.Keys.ToList())   // files under a mount (the TLS certificate and key)
                foreach (var (mountPath, local) in mounts)
                    if (env[k].StartsWith(mountPath + "/", StringComparison.Ordinal)) env[k] = local + env[k][mountPath.Length..];
            env["MOECLUSTER_DATA_DIR"] = mounts[env["MOECLUSTER_DATA_DIR"]];
            env["MOECLUSTER_MODEL"] = checkpoint;
            if (env["MOECLUSTER_DEVICE"].StartsWith("cuda", StringComparison.Ordinal)) env["MOECLUSTER_DEVICE"] = "cpu";   // no GPU here

            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "moecluster.dll"));
            foreach (var a in container["args"]!.AsArray()) info.ArgumentList.Add((string)a!);
            foreach (var k in info.Environment.Keys.Where(k => k.StartsWith("MOECLUSTER_", StringComparison.Ordinal)).ToList()) info.Environment.Remove(k);
            foreach (var (k, v) in env) info.Environment[k] = v;
            var started = new Pod(name, set, Process.Start(info)!) { Roles = env["MOECLUSTER_ROLES"].Split(',') };
            foreach (var (k, v) in pod.portsByName) started.portsByName[k] = v;
            started.process.OutputDataReceived += (_, e) => { lock (started.log) started.log.AppendLine(e.Data); };
            started.process.ErrorDataReceived += (_, e) => { lock (started.log) started.log.AppendLine(e.Data); };
            started.process.BeginOutputReadLine();
            started.process.BeginErrorReadLine();
            return started;
        }

        public JsonNode SecretRef(string variable) =>
            Container["env"]!.AsArray().First(e => (string)e!["name"]! == variable)!["valueFrom"]!["secretKeyRef"]!;

        public string PortName(int containerPort) =>
            ChartRehearsalSpec.Container(Set)["ports"]!.AsArray().First(p => (long)p!["containerPort"]! == containerPort)!["name"]!.ToString();

        public Uri Url(string portName, string path) => new($"http://127.0.0.1:{portsByName[portName]}{path}");

        /// <summary>The probe as the kubelet runs it: GET path on the named port every periodSeconds, each try given
        /// timeoutSeconds, failing after failureThreshold tries (the whole budget capped at 3 minutes here).</summary>
        public async Task ProbeAsync(HttpClient http, string probe, bool once = false)
        {
            var p = Container[probe]!;
            var get = p["httpGet"]!;
            var url = Url((string)get["port"]!, (string)get["path"]!);
            var timeout = TimeSpan.FromSeconds((long)p["timeoutSeconds"]!);
            var budget = TimeSpan.FromSeconds(Math.Min(180, (long)p["periodSeconds"]! * (long)p["failureThreshold"]!));
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException($"{Name} exited with {process.ExitCode} during its {probe}");
                using var cts = new CancellationTokenSource(timeout);
                try
                {
                    using var r = await http.GetAsync(url, cts.Token);
                    if (r.IsSuccessStatusCode) break;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
                if (once || deadline.Elapsed > budget) throw new TimeoutException($"{Name}: {probe} GET {get["path"]} on port {get["port"]} did not pass within {budget.TotalSeconds:0}s");
                await Task.Delay(200);
            }
            if (probe == "startupProbe") StartupSeconds = clock.Elapsed.TotalSeconds;
            if (probe == "readinessProbe") ReadySeconds = clock.Elapsed.TotalSeconds;
        }

        public string Tail() { lock (log) return $"--- {Name} ---\n" + string.Join('\n', log.ToString().Split('\n').TakeLast(40)); }

        public void Dispose()
        {
            if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(); }
            process.Dispose();
        }
    }
}
