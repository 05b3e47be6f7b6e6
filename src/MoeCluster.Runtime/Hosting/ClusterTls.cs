using System.Security.Cryptography.X509Certificates;
using Akka.Remote.Hosting;
using Akka.Remote.Transport.DotNetty;

namespace MoeCluster.Runtime.Hosting;

/// <summary>TLS between nodes: every node presents the cluster certificate (a PKCS#12 file, e.g. from a Kubernetes
/// Secret) and accepts a peer only if it presents a certificate whose thumbprint is pinned — by default the cluster
/// certificate itself, plus any in <see cref="ClusterNodeOptions.TrustedThumbprints"/> (for rotation). Mutual
/// authentication is on, so a node without the right certificate can neither connect nor be connected to.
/// Validation is never suppressed: suppress-validation would accept any certificate at all.</summary>
public static class ClusterTls
{
    /// <summary>PKCS#12, or a PEM certificate and PEM private key (re-exported as PKCS#12 so that TLS can use the key
    /// on every platform).</summary>
    static X509Certificate2 Load(string path, string? keyPath, string? password)
    {
        if (keyPath is null)
            return X509CertificateLoader.LoadPkcs12FromFile(path, password, X509KeyStorageFlags.Exportable | X509KeyStorageFlags.EphemeralKeySet);
        if (!File.Exists(keyPath)) throw new FileNotFoundException($"cluster TLS key '{keyPath}' not found", keyPath);
        using var pem = X509Certificate2.CreateFromPemFile(path, keyPath);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable | X509KeyStorageFlags.EphemeralKeySet);
    }

    public static SslOptions Options(ClusterNodeOptions node)
    {
        var path = node.TlsCertificatePath!;
        if (!File.Exists(path)) throw new FileNotFoundException($"cluster TLS certificate '{path}' not found", path);
        var certificate = Load(path, node.TlsKeyPath, node.TlsCertificatePassword);
        if (!certificate.HasPrivateKey) throw new ArgumentException($"cluster TLS certificate '{path}' has no private key; a node must prove it holds it");
        var pinned = node.TrustedThumbprints.Append(certificate.Thumbprint).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        return new SslOptions
        {
            X509Certificate = certificate,
            SuppressValidation = false,
            RequireMutualAuthentication = true,
            ValidateCertificateHostname = false,
            CustomValidator = CertificateValidation.PinnedCertificate(pinned),
        };
    }
}
