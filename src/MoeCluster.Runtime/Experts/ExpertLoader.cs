using MoeCluster.Model.Layers;
using MoeCluster.Placement;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Experts;

/// <summary>How one expert node holds its routed experts: each loaded from the checkpoint in the compute dtype, or in
/// int8 when the precision plan names it (<see cref="ExpertPrecision"/>); and, with a resident set
/// (<c>--resident-experts N</c>), as a <see cref="PagedExpert"/> that keeps its weights on disk until it computes.
/// One per node, shared by the node's expert entities and replicas.</summary>
public sealed class ExpertLoader
{
    readonly IReadOnlySet<ExpertId> int8;

    public ExpertLoader(ModelSource model, IReadOnlySet<ExpertId>? int8 = null, int residentExperts = 0)
    {
        Model = model;
        this.int8 = int8 ?? new HashSet<ExpertId>();
        Resident = residentExperts > 0 ? new ResidentExperts(residentExperts, Load, model.Config.NumLayers) : null;
    }

    public ModelSource Model { get; }

    /// <summary>The node's resident set, or null when every expert stays loaded.</summary>
    public ResidentExperts? Resident { get; }

    /// <summary>The compute of <paramref name="key"/>: its weights loaded now, or paged when the node keeps a resident set.</summary>
    public IExpertCompute Create(ExpertKey key) => Resident is { } r ? new PagedExpert(key, r, BytesOf(key)) : Load(key);

    public bool IsInt8(ExpertKey key) => int8.Contains(new ExpertId(key.Layer, key.Expert));

    /// <summary>Reads the expert's weights from the checkpoint now (int8 when planned). The caller owns the result.</summary>
    public IExpertCompute Load(ExpertKey key)
    {
        var module = ExpertMlp.Routed(Model.Config, Model.Options);
        try { Model.Load(module, Model.Names.ExpertPrefix(key.Layer, key.Expert)); }
        catch { module.Dispose(); throw; }
        // A demand load runs inside the computing entity's dispose scope: the weights must outlive it.
        foreach (var p in module.parameters()) p.DetachFromDisposeScope();
        IExpertCompute expert = module;
        if (IsInt8(key))
        {
            expert = Int8Expert.From(module);
            module.Dispose();
        }
        return new Counted(expert, IsInt8(key) ? "int8" : "float");
    }

    /// <summary>Bytes the expert occupies when loaded (for placement and ExpertStarted).</summary>
    long BytesOf(ExpertKey key)
    {
        var c = Model.Config;
        long weights = 3L * c.HiddenSize * c.ExpertIntermediateSize;
        return IsInt8(key) ? weights + 4L * (2 * c.ExpertIntermediateSize + c.HiddenSize)
            : weights * (Model.Options.DType == TorchSharp.torch.ScalarType.Float32 ? 4 : 2);
    }

    /// <summary>Keeps <c>moecluster_expert_memory_bytes{precision}</c> equal to what is loaded.</summary>
    sealed class Counted : IExpertCompute
    {
        readonly IExpertCompute inner;
        readonly string precision;
        int disposed;

        public Counted(IExpertCompute inner, string precision)
        {
            this.inner = inner;
            this.precision = precision;
            MoeMetrics.ExpertMemoryBytes.WithLabels(precision).Inc(inner.ParameterBytes);
        }

        public TorchSharp.torch.Tensor Forward(TorchSharp.torch.Tensor rows) => inner.Forward(rows);
        public long ParameterBytes => inner.ParameterBytes;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 1) return;
            MoeMetrics.ExpertMemoryBytes.WithLabels(precision).Dec(inner.ParameterBytes);
            inner.Dispose();
        }
    }
}
