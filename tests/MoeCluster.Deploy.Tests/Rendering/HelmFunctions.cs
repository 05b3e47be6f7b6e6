using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using YamlDotNet.Serialization;

namespace MoeCluster.Deploy.Tests.Rendering;

/// <summary>The template functions this chart calls (Go's builtins, Sprig's and Helm's), with their Helm meaning.
/// An unknown function throws, so a template using one not implemented here fails the test rather than rendering
/// wrongly. <c>lookup</c> sees the objects given in <see cref="Cluster"/> (empty: a first install).</summary>
public sealed class HelmFunctions
{
    internal GoTemplate Owner { get; set; } = null!;

    /// <summary>Objects "in the cluster" for lookup, by "kind/namespace/name".</summary>
    public Dictionary<string, object?> Cluster { get; } = new();

    public sealed class ChartFailure(string message) : Exception(message);

    public object? Call(string name, List<object?> a) => name switch
    {
        "include" => Owner.Include(Str(a[0]), a.Count > 1 ? a[1] : null),
        "tpl" => Owner.ExecuteInline(Str(a[0]), a[1]),
        "fail" => throw new ChartFailure(Str(a[0])),
        "toYaml" => ToYaml(a[0]),
        "nindent" => "\n" + Indent((int)Int(a[0]), Str(a[1])),
        "indent" => Indent((int)Int(a[0]), Str(a[1])),
        "quote" => string.Join(" ", a.Select(x => "\"" + Print(x).Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"")),
        "printf" => Printf(Str(a[0]), a.Skip(1).ToList()),
        "print" => string.Concat(a.Select(Print)),
        "join" => string.Join(Str(a[0]), (a[1] as IList<object?> ?? []).Select(Print)),
        "has" => a[1] is IList<object?> l && l.Any(x => Equals(Normalize(x), Normalize(a[0]))),
        "hasPrefix" => Str(a[1]).StartsWith(Str(a[0]), StringComparison.Ordinal),
        "contains" => Str(a[1]).Contains(Str(a[0]), StringComparison.Ordinal),
        "trimSuffix" => Str(a[1]).EndsWith(Str(a[0]), StringComparison.Ordinal) ? Str(a[1])[..^Str(a[0]).Length] : Str(a[1]),
        "trunc" => Str(a[1]).Length > Int(a[0]) ? Str(a[1])[..(int)Int(a[0])] : Str(a[1]),
        "replace" => Str(a[2]).Replace(Str(a[0]), Str(a[1])),
        "toString" => Print(a[0]),
        "and" => a.FirstOrDefault(x => !Truthy(x), a[^1]),
        "or" => a.FirstOrDefault(Truthy, a[^1]),
        "not" => !Truthy(a[0]),
        "eq" => a.Skip(1).Any(x => Equals(Normalize(a[0]), Normalize(x))),
        "ne" => !Equals(Normalize(a[0]), Normalize(a[1])),
        "gt" => Compare(a[0], a[1]) > 0,
        "lt" => Compare(a[0], a[1]) < 0,
        "int" => Int(a[0]),
        "default" => a.Count > 1 && Truthy(a[1]) ? a[1] : a[0],
        "empty" => !Truthy(a[0]),
        "dict" => Enumerable.Range(0, a.Count / 2).ToDictionary(i => Str(a[2 * i]), i => a[2 * i + 1]),
        "list" => a.ToList(),
        "append" => (a[0] as IList<object?> ?? []).Append(a[1]).ToList(),
        "concat" => a.SelectMany(x => x as IList<object?> ?? []).ToList(),
        "until" => Enumerable.Range(0, (int)Int(a[0])).Select(i => (object?)(long)i).ToList(),
        "index" => a.Skip(1).Aggregate(a[0], (v, k) => v switch
        {
            IDictionary<string, object?> m => m.TryGetValue(Str(k), out var x) ? x : null,
            IList<object?> l => l[(int)Int(k)],
            _ => null,
        }),
        "hasKey" => a[0] is IDictionary<string, object?> m && m.ContainsKey(Str(a[1])),
        "set" => Set(a),
        "deepCopy" => DeepCopy(a[0]),
        "kindIs" => Kind(a[1]) == Str(a[0]),
        "b64enc" => Convert.ToBase64String(Encoding.UTF8.GetBytes(Str(a[0]))),
        "sha256sum" => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Str(a[0])))),
        "randAlphaNum" => new string(Enumerable.Range(0, (int)Int(a[0])).Select(_ => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[RandomNumberGenerator.GetInt32(62)]).ToArray()),
        "lookup" => Cluster.TryGetValue($"{Str(a[1])}/{Str(a[2])}/{Str(a[3])}", out var found) ? found : new Dictionary<string, object?>(),
        "genCA" => GenCa(Str(a[0]), (int)Int(a[1])),
        "genSignedCert" => GenSignedCert(Str(a[0]), a[2] as IList<object?> ?? [], (int)Int(a[3]), (IDictionary<string, object?>)a[4]!),
        _ => throw new NotSupportedException($"template function '{name}' is not implemented by the test renderer"),
    };

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        string s => s.Length > 0,
        long n => n != 0,
        double d => d != 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>How {{ value }} prints: Go's fmt for scalars, Go's map/slice form for the rest (rarely wanted).</summary>
    public static string Print(object? v) => v switch
    {
        null => "",
        bool b => b ? "true" : "false",
        double d => d.ToString(CultureInfo.InvariantCulture),
        long n => n.ToString(CultureInfo.InvariantCulture),
        IList<object?> l => "[" + string.Join(" ", l.Select(Print)) + "]",
        IDictionary<string, object?> m => "map[" + string.Join(" ", m.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}:{Print(e.Value)}")) + "]",
        _ => v.ToString() ?? "",
    };

    static string Str(object? v) => v as string ?? Print(v);

    static long Int(object? v) => v switch
    {
        long n => n,
        double d => (long)d,
        string s when long.TryParse(s, out var n) => n,
        bool b => b ? 1 : 0,
        _ => 0,
    };

    static object? Normalize(object? v) => v is double d && d == Math.Floor(d) ? (long)d : v;

    static int Compare(object? x, object? y) => (x, y) switch
    {
        (string a, string b) => string.CompareOrdinal(a, b),
        _ => Convert.ToDouble(x ?? 0L, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(y ?? 0L, CultureInfo.InvariantCulture)),
    };

    static string Kind(object? v) => v switch
    {
        null => "invalid",
        string => "string",
        bool => "bool",
        long => "int64",
        double => "float64",
        IList<object?> => "slice",
        IDictionary<string, object?> => "map",
        _ => v.GetType().Name,
    };

    static object? Set(List<object?> a)
    {
        var map = (IDictionary<string, object?>)a[0]!;
        map[Str(a[1])] = a[2];
        return map;
    }

    public static object? DeepCopy(object? v) => v switch
    {
        IDictionary<string, object?> m => m.ToDictionary(e => e.Key, e => DeepCopy(e.Value)),
        IList<object?> l => l.Select(DeepCopy).ToList(),
        _ => v,
    };

    static string Indent(int n, string s)
    {
        var pad = new string(' ', n);
        return pad + s.Replace("\n", "\n" + pad);
    }

    /// <summary>Go's %s %d %q %v, the verbs the chart uses.</summary>
    static string Printf(string format, List<object?> args)
    {
        var output = new StringBuilder();
        int next = 0;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { output.Append(format[i]); continue; }
            char verb = format[++i];
            if (verb == '%') { output.Append('%'); continue; }
            var arg = args[next++];
            output.Append(verb switch
            {
                'q' => "\"" + Str(arg).Replace("\"", "\\\"") + "\"",
                'd' => Int(arg).ToString(CultureInfo.InvariantCulture),
                _ => Print(arg),
            });
        }
        return output.ToString();
    }

    /// <summary>Helm's toYaml: block YAML without a trailing newline.</summary>
    static string ToYaml(object? v)
    {
        if (v is null) return "null";
        var yaml = new SerializerBuilder().Build().Serialize(v);
        return yaml.TrimEnd('\n');
    }

    // Helm's genCA / genSignedCert: PEM strings in a map with Cert and Key (and the CA's key kept for signing).
    static Dictionary<string, object?> GenCa(string cn, int days)
    {
        var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(days));
        return new() { ["Cert"] = cert.ExportCertificatePem(), ["Key"] = key.ExportRSAPrivateKeyPem(), ["certificate"] = cert };
    }

    static Dictionary<string, object?> GenSignedCert(string cn, IList<object?> dns, int days, IDictionary<string, object?> ca)
    {
        var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dns) san.AddDnsName(Str(name));
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var issuer = (X509Certificate2)ca["certificate"]!;   // created with its key
        var cert = request.Create(issuer, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(days - 1), RandomNumberGenerator.GetBytes(8));
        return new() { ["Cert"] = cert.ExportCertificatePem(), ["Key"] = key.ExportRSAPrivateKeyPem() };
    }
}
