using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>
/// The expert-compute stage of the MoE pipeline (router → group → <b>expert compute</b> → combine): one routed expert
/// applied to the rows sent to it. <see cref="MoeBlock"/> runs its experts in process through this interface and the
/// cluster's expert actor hosts one behind it, so a different weight format (a quantised expert, weights paged in from
/// disk) only has to implement it; routing and combine never look inside.
/// </summary>
public interface IExpertCompute : IDisposable
{
    /// <summary>rows: [n, D] in the compute dtype → [n, D]. Row i of the output depends only on row i of the input,
    /// so an expert's rows may be split over replicas and give the same result.</summary>
    Tensor Forward(Tensor rows);

    /// <summary>Bytes of weights this expert holds in memory (for placement and metrics).</summary>
    long ParameterBytes { get; }
}
