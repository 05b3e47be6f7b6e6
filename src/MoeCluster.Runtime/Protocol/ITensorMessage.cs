namespace MoeCluster.Runtime.Protocol;

/// <summary>Marker for messages that may cross nodes carrying tensors: bound to
/// <see cref="Serialization.TensorMessageSerializer"/> (binary dtype, shape, raw bytes — no JSON, no base64).</summary>
public interface ITensorMessage;
