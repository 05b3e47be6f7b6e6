namespace MoeCluster.Placement;

/// <summary>
/// An expert's primary changes node: the weights must be loaded on <see cref="ToNode"/>.
/// <see cref="FromNode"/> is null for an expert that had no node before (first placement).
/// </summary>
public sealed record ExpertMove(ExpertId Expert, string? FromNode, string ToNode);
