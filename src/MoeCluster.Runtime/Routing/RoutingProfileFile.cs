using MoeCluster.Model;
using MoeCluster.Placement;

namespace MoeCluster.Runtime.Routing;

/// <summary>Reads a routing profile (<c>--routing-profile</c>, the JSON of <c>moecluster routing-stats --output</c>)
/// and checks it was taken on this model, so a wrong file stops the node at start with a message naming it.</summary>
public static class RoutingProfileFile
{
    /// <exception cref="ArgumentException">The file cannot be read, is not a routing profile, or fits another model.</exception>
    public static RoutingSnapshot Read(string path, ModelConfig config, string why)
    {
        RoutingSnapshot profile;
        try { profile = RoutingSnapshot.Parse(File.ReadAllText(path)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new ArgumentException($"--routing-profile {path} ({why}): {e.Message}", e);
        }
        if (profile.Experts != config.NumExperts || profile.TopK != config.TopK)
            throw new ArgumentException($"--routing-profile {path}: taken on a model with {profile.Experts} experts per layer and top-{profile.TopK}; this model has {config.NumExperts} and top-{config.TopK}");
        var moe = config.MoeLayers.ToHashSet();
        if (profile.Layers.FirstOrDefault(l => !moe.Contains(l.Layer)) is { } extra)
            throw new ArgumentException($"--routing-profile {path}: layer {extra.Layer} is not a MoE layer of this model");
        return profile;
    }
}
