namespace MoeCluster.Placement;

/// <summary>
/// What one MoE layer's router decided for the rows (tokens) of one step, copied to the host: the top-k experts of every
/// row, row-major (<c>Experts[row * TopK + j]</c>), and the entropy in nats of every row's gate distribution over all
/// experts, before top-k.
/// </summary>
/// <param name="Layer">Decoder layer index of the MoE layer.</param>
/// <param name="TopK">Experts chosen per row (k).</param>
/// <param name="Experts">Rows × k expert indices.</param>
/// <param name="Entropy">One entropy per row.</param>
public sealed record LayerRouting(int Layer, int TopK, int[] Experts, float[] Entropy)
{
    /// <summary>Rows (tokens) in the step.</summary>
    public int Rows => TopK == 0 ? 0 : Experts.Length / TopK;
}
